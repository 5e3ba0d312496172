"""OAuth 2.0 authorization servers for the vendors that declare one (`Vendor.oauth_profile`: Calendly,
Zendesk, HubSpot, Shopify).

Built on authlib's framework-agnostic server core, wired to Starlette here:

* `profiles`: the `Profile` a vendor declares (paths, client authentication, lifetimes, clients) and
  what the vendors share; the rest a vendor does its own way is its `oauth_*` hooks (token extras,
  callback parameters, error bodies, token-management routes).
* `models`: the stored objects (clients, codes, grant families, refresh tokens, device codes).
* `adapters`: authlib's request and response objects over Starlette's.
* `grants`: the grants and endpoints (S256-only PKCE, rotating refresh tokens, device flow, revocation,
  RFC 9207 `iss`).
* `server`: the authorization server (authlib's, one per vendor) and the hub that holds them.
* `routes`: the Starlette endpoints and the HTML consent / device-verification pages.

Access tokens go into the sandbox's token registry (`state.tokens`), so the vendor API endpoints
accept them like any other credential.
"""

"""OAuth 2.0 authorization servers for the four OAuth vendors (Calendly, Zendesk, HubSpot, Shopify).

Built on authlib's framework-agnostic server core, wired to Starlette here:

* `profiles`: what differs per vendor (paths, client authentication, lifetimes, token extras, clients).
* `models`: the stored objects (clients, codes, grant families, refresh tokens, device codes).
* `server`: the authlib integration (request/response adapters, grants, endpoints, RFC 9207 `iss`).
* `routes`: the Starlette endpoints and the HTML consent / device-verification pages.

Access tokens go into the sandbox's token registry (`state.tokens`), so the vendor API endpoints
accept them like any other credential.
"""

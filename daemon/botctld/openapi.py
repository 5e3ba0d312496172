"""The edge's OpenAPI 3.1 document, served at /openapi.json. Tests check it against the routes."""

from __future__ import annotations

from functools import cache
from typing import Any

from botctld import __version__
from botctld.error_codes import ERRORS

ERROR_CODES = list(ERRORS)  # the one catalogue: botctld/error_codes.py


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


WS = {
    "name": "ws",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9-]{2,63}$"},
    "description": "Workspace name.",
}
ORIGIN = {
    "name": "Origin",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Browsers send it; it must be one of the workspace's allowed origins.",
}
COMMON = {
    "404": _err("Unknown workspace."),
    "403": _err("Origin not allowed for this workspace."),
    "429": {
        **_err("Rate limited; see Retry-After."),
        "headers": {
            "Retry-After": {"schema": {"type": "integer"}},
            "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
        },
    },
    "503": _err("The provider is unavailable."),
}


@cache
def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "botctl widget API",
            "version": __version__,
            "description": "The visitor-facing API of a self-hosted botctl daemon. Customer-specific actions "
            "need a short-lived identity token signed by the business's site "
            "(Authorization: Bearer). Without a token only anonymous actions run; a bad token "
            "is refused (invalid_identity), never downgraded.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "identityToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Identity token signed by the site for its "
                    "logged-in visitor (aud = workspace).",
                }
            },
            "headers": {
                "RequestId": {
                    "schema": {"type": "string", "pattern": "^req_[A-Za-z0-9]+$"},
                    "description": "Request id, also in the audit record.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "request_id"],
                    "additionalProperties": False,
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "additionalProperties": False,
                            "properties": {
                                "code": {"type": "string", "enum": ERROR_CODES},
                                "message": {"type": "string"},
                            },
                        },
                        "request_id": {"type": "string"},
                    },
                },
                "ActionRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "params": {
                            "type": "object",
                            "additionalProperties": True,
                            "description": "As the action's params schema says.",
                        }
                    },
                },
                "ActionResult": {
                    "type": "object",
                    "required": ["ok", "action", "result", "request_id"],
                    "additionalProperties": False,
                    "properties": {
                        "ok": {"const": True},
                        "action": {"type": "string"},
                        "result": {},
                        "request_id": {"type": "string"},
                    },
                },
                "ActionInfo": {
                    "type": "object",
                    "required": ["name", "connector", "description", "customer_specific", "params"],
                    "properties": {
                        "name": {"type": "string"},
                        "connector": {"type": "string"},
                        "vendor": {"type": "string"},
                        "category": {"type": "string"},
                        "description": {"type": "string"},
                        "customer_specific": {"type": "boolean"},
                        "params": {"type": "object", "description": "JSON Schema"},
                    },
                },
                "ActionCatalog": {
                    "type": "object",
                    "required": ["workspace", "actions"],
                    "properties": {
                        "workspace": {"type": "string"},
                        "actions": {"type": "array", "items": {"$ref": "#/components/schemas/ActionInfo"}},
                    },
                },
                "WidgetConfig": {
                    "type": "object",
                    "required": ["workspace", "display_name", "greeting", "actions"],
                    "properties": {
                        "workspace": {"type": "string"},
                        "display_name": {"type": "string"},
                        "greeting": {"type": "string"},
                        "actions": {
                            "type": "object",
                            "required": ["anonymous", "signed_in"],
                            "properties": {
                                "anonymous": {"type": "array", "items": {"type": "string"}},
                                "signed_in": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "features": {"type": "object"},
                        "theme": {
                            "type": "object",
                            "description": "accent (hex), logo (https URL or "
                            "same-origin path), locale, when set.",
                            "properties": {
                                "accent": {"type": "string"},
                                "logo": {"type": "string"},
                                "locale": {"type": "string"},
                            },
                        },
                        "handoff": {
                            "type": "object",
                            "description": "Talk to a person: the help "
                            "desk's ticket action, or how to "
                            "reach support.",
                            "properties": {
                                "action": {"type": ["string", "null"]},
                                "contact": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
                "ChatRequest": {
                    "type": "object",
                    "required": ["message"],
                    "additionalProperties": False,
                    "properties": {
                        "message": {"type": "string", "minLength": 1, "maxLength": 2000},
                        "conversation_id": {"type": "string", "maxLength": 64},
                    },
                },
                "Citation": {
                    "type": "object",
                    "required": ["document", "section", "excerpt"],
                    "properties": {
                        "document": {"type": "string"},
                        "section": {"type": ["string", "null"]},
                        "excerpt": {"type": "string"},
                        "title": {"type": "string", "description": "The document's title."},
                        "url": {
                            "type": ["string", "null"],
                            "description": "Its help-center page, when the operator gave one.",
                        },
                    },
                },
                "FeedbackRequest": {
                    "type": "object",
                    "required": ["answer_id", "vote", "question", "answer"],
                    "additionalProperties": False,
                    "properties": {
                        "answer_id": {"type": "string", "maxLength": 80},
                        "vote": {"enum": ["up", "down"]},
                        "question": {"type": "string", "maxLength": 2000},
                        "answer": {"type": "string", "maxLength": 8000},
                    },
                },
                "ChatAnswer": {
                    "type": "object",
                    "required": ["answer", "grounded", "citations", "suggested_actions", "request_id"],
                    "properties": {
                        "answer": {"type": "string"},
                        "grounded": {"type": "boolean"},
                        "citations": {"type": "array", "items": {"$ref": "#/components/schemas/Citation"}},
                        "suggested_actions": {"type": "array", "items": {"type": "object"}},
                        "answer_id": {"type": "string", "description": "What a feedback vote refers to."},
                        "conversation_id": {"type": ["string", "null"]},
                        "request_id": {"type": "string"},
                    },
                },
                "JsonRpcMessage": {
                    "type": "object",
                    "required": ["jsonrpc"],
                    "description": "One JSON-RPC 2.0 message of the MCP protocol (no batches).",
                    "properties": {
                        "jsonrpc": {"const": "2.0"},
                        "id": {"type": ["string", "integer"]},
                        "method": {"type": "string", "maxLength": 100},
                        "params": {"type": "object"},
                    },
                },
                "JsonRpcAnswer": {
                    "type": "object",
                    "required": ["jsonrpc", "id"],
                    "properties": {
                        "jsonrpc": {"const": "2.0"},
                        "id": {"type": ["string", "integer", "null"]},
                        "result": {"type": "object"},
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "integer"},
                                "message": {"type": "string"},
                                "data": {},
                            },
                        },
                    },
                },
                "ConfirmationAnswer": {
                    "type": "object",
                    "required": ["decision"],
                    "additionalProperties": False,
                    "properties": {"decision": {"enum": ["confirm", "cancel"]}},
                },
                "Confirmation": {
                    "type": "object",
                    "required": ["request_id"],
                    "description": "The summary of a change waiting for the visitor (GET), or the "
                    "outcome of their answer (POST: the action's result when confirmed).",
                    "properties": {
                        "confirmation_id": {"type": "string"},
                        "action": {"type": "string"},
                        "status": {"type": "string"},
                        "title": {"type": "string"},
                        "summary": {"type": "string"},
                        "details": {"type": "array"},
                        "expires_in_s": {"type": "integer"},
                        "ok": {"type": "boolean"},
                        "result": {},
                        "request_id": {"type": "string"},
                    },
                },
                "ConfirmationList": {
                    "type": "object",
                    "required": ["confirmations", "request_id"],
                    "properties": {
                        "confirmations": {
                            "type": "array",
                            "items": {"type": "object", "required": ["confirmation_id", "action", "summary"]},
                        },
                        "request_id": {"type": "string"},
                    },
                },
                "ProtectedResource": {
                    "type": "object",
                    "required": ["resource", "bearer_methods_supported"],
                    "properties": {
                        "resource": {"type": "string"},
                        "authorization_servers": {"type": "array", "items": {"type": "string"}},
                        "bearer_methods_supported": {"type": "array", "items": {"type": "string"}},
                        "resource_name": {"type": "string"},
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["ok"],
                    "properties": {
                        "ok": {"type": "boolean"},
                        "version": {"type": "string"},
                        "provider": {"type": "object"},
                    },
                },
            },
        },
        "paths": {
            "/v1/workspaces/{ws}/widget-config": {
                "get": {
                    "operationId": "getWidgetConfig",
                    "summary": "Public widget configuration",
                    "parameters": [WS, ORIGIN],
                    "responses": {
                        "200": _ok("WidgetConfig", "Display name, greeting, actions by sign-in need."),
                        **COMMON,
                    },
                },
                "options": {
                    "operationId": "preflightWidgetConfig",
                    "summary": "CORS preflight",
                    "parameters": [WS, ORIGIN],
                    "responses": {
                        "204": {"description": "Allowed."},
                        "403": COMMON["403"],
                        "404": COMMON["404"],
                        "503": COMMON["503"],
                    },
                },
            },
            "/v1/workspaces/{ws}/actions": {
                "get": {
                    "operationId": "listActions",
                    "summary": "Actions of this workspace's connected tools",
                    "parameters": [WS, ORIGIN],
                    "responses": {"200": _ok("ActionCatalog", "The catalog."), **COMMON},
                },
                "options": {
                    "operationId": "preflightActions",
                    "summary": "CORS preflight",
                    "parameters": [WS, ORIGIN],
                    "responses": {
                        "204": {"description": "Allowed."},
                        "403": COMMON["403"],
                        "404": COMMON["404"],
                        "503": COMMON["503"],
                    },
                },
            },
            "/v1/workspaces/{ws}/chat": {
                "post": {
                    "operationId": "chat",
                    "summary": "A grounded answer from the workspace's own knowledge",
                    "parameters": [WS, ORIGIN],
                    "security": [{}, {"identityToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}
                        },
                    },
                    "responses": {
                        "200": _ok(
                            "ChatAnswer",
                            "The answer with its citations (grounded: false when "
                            "the knowledge has nothing relevant).",
                        ),
                        "400": _err("Malformed body (invalid_request)."),
                        "401": _err("invalid_identity (a token was sent and failed)."),
                        "403": COMMON["403"],
                        "404": COMMON["404"],
                        "413": _err("Body over 64 KiB."),
                        "415": _err("Body is not application/json."),
                        "429": COMMON["429"],
                        "503": COMMON["503"],
                    },
                },
                "options": {
                    "operationId": "preflightChat",
                    "summary": "CORS preflight",
                    "parameters": [WS, ORIGIN],
                    "responses": {
                        "204": {"description": "Allowed."},
                        "403": COMMON["403"],
                        "404": COMMON["404"],
                        "503": COMMON["503"],
                    },
                },
            },
            "/v1/workspaces/{ws}/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": "A thumbs up or down on an answer the chat gave",
                    "parameters": [WS, ORIGIN],
                    "security": [{}, {"identityToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/FeedbackRequest"}}
                        },
                    },
                    "responses": {
                        "200": {"description": "Recorded (a second vote on the same answer replaces it)."},
                        "400": _err("Not an answer this workspace gave, or a malformed body."),
                        "401": _err("invalid_identity."),
                        "403": COMMON["403"],
                        "404": COMMON["404"],
                        "413": _err("Body over 64 KiB."),
                        "415": _err("Body is not application/json."),
                        "429": COMMON["429"],
                        "503": COMMON["503"],
                    },
                },
                "options": {
                    "operationId": "preflightFeedback",
                    "summary": "CORS preflight",
                    "parameters": [WS, ORIGIN],
                    "responses": {
                        "204": {"description": "Allowed."},
                        "403": COMMON["403"],
                        "404": COMMON["404"],
                        "503": COMMON["503"],
                    },
                },
            },
            "/v1/workspaces/{ws}/actions/{action}": {
                "post": {
                    "operationId": "runAction",
                    "summary": "Run an action for the (verified) visitor",
                    "parameters": [
                        WS,
                        ORIGIN,
                        {
                            "name": "action",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 100},
                            "description": "connector.action, e.g. shopify.list_my_orders",
                        },
                    ],
                    "security": [{}, {"identityToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ActionRequest"}}
                        },
                    },
                    "responses": {
                        "200": _ok("ActionResult", "The action ran."),
                        "400": _err("Malformed JSON or unknown body fields (invalid_request)."),
                        "401": _err(
                            "identity_required (no token, customer-specific action) or invalid_identity."
                        ),
                        "403": _err("plan_required or origin_not_allowed."),
                        "404": _err(
                            "unknown_workspace, unknown_action or not_found (also for another customer's object)."
                        ),
                        "409": _err("not_connected, needs_reauth or missing_scope."),
                        "413": _err("Body over 64 KiB."),
                        "415": _err("Body is not application/json."),
                        "422": _err("invalid_params."),
                        "429": COMMON["429"],
                        "500": _err("internal_error."),
                        "502": _err(
                            "upstream_error, or outcome_unknown: a change the vendor may have applied without confirming it."
                        ),
                        "503": COMMON["503"],
                        "504": _err("upstream_timeout."),
                    },
                },
                "options": {
                    "operationId": "preflightRunAction",
                    "summary": "CORS preflight",
                    "parameters": [
                        WS,
                        ORIGIN,
                        {"name": "action", "in": "path", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "204": {"description": "Allowed."},
                        "403": COMMON["403"],
                        "404": COMMON["404"],
                        "503": COMMON["503"],
                    },
                },
            },
            **_mcp_paths(),
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The edge is up",
                    "responses": {"200": _ok("Health", "Up.")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "The provider is reachable",
                    "responses": {"200": _ok("Health", "Ready."), "503": COMMON["503"]},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/widget.js": {
                "get": {
                    "operationId": "widget",
                    "summary": "The embeddable widget script",
                    "responses": {
                        "200": {
                            "description": "JavaScript.",
                            "content": {"application/javascript": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "Not modified."},
                    },
                }
            },
        },
    }


def _preflight(operation_id: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": "CORS preflight",
        "parameters": params,
        "responses": {
            "204": {"description": "Allowed."},
            "403": COMMON["403"],
            "404": COMMON["404"],
            "503": COMMON["503"],
        },
    }


def _mcp_paths() -> dict[str, Any]:
    """The MCP endpoint (botctld.mcp), the visitor's confirmations, and the endpoint's RFC 9728 metadata."""
    either = {
        "description": "A malformed message: the JSON-RPC error, or the error envelope for a body that is "
        "not JSON.",
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/JsonRpcAnswer"},
                        {"$ref": "#/components/schemas/Error"},
                    ]
                }
            }
        },
    }
    cid = {
        "name": "cid",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
        "description": "The confirmation id the bot was given (cnf_...).",
    }
    answered = {
        "401": _err("identity_required or invalid_identity: only the visitor it was asked for answers."),
        "404": _err("unknown_workspace, or not_found: no such confirmation for this visitor."),
        "409": _err("confirmation_used (already answered), or the action's not_connected / needs_reauth."),
        "410": _err("confirmation_expired."),
        "403": _err("origin_not_allowed or plan_required."),
        "429": COMMON["429"],
        "503": COMMON["503"],
    }
    return {
        "/v1/workspaces/{ws}/mcp": {
            "post": {
                "operationId": "mcp",
                "summary": "MCP (Streamable HTTP, JSON answers): the workspace's actions as "
                "tools for the verified visitor",
                "parameters": [
                    WS,
                    ORIGIN,
                    {
                        "name": "MCP-Protocol-Version",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "security": [{}, {"identityToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/JsonRpcMessage"}}
                    },
                },
                "responses": {
                    "200": _ok("JsonRpcAnswer", "The JSON-RPC answer (tool errors carry the stable code)."),
                    "202": {"description": "A notification or response: accepted, no body."},
                    "400": either,
                    "401": {
                        **_ok("JsonRpcAnswer", "invalid_identity: the token was refused (never downgraded)."),
                        "headers": {
                            "WWW-Authenticate": {"schema": {"type": "string"}},
                            "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
                        },
                    },
                    "403": COMMON["403"],
                    "404": COMMON["404"],
                    "413": _err("Body over 64 KiB."),
                    "415": _err("Body is not application/json."),
                    "429": COMMON["429"],
                    "503": COMMON["503"],
                },
            },
            "options": _preflight("preflightMcp", [WS, ORIGIN]),
        },
        "/v1/workspaces/{ws}/confirmations": {
            "get": {
                "operationId": "listConfirmations",
                "summary": "The signed-in visitor's changes still waiting for their confirmation",
                "parameters": [WS, ORIGIN],
                "security": [{"identityToken": []}],
                "responses": {
                    "200": _ok("ConfirmationList", "Oldest first, at most 20."),
                    "401": _err("identity_required or invalid_identity."),
                    "403": COMMON["403"],
                    "404": COMMON["404"],
                    "429": COMMON["429"],
                    "503": COMMON["503"],
                },
            },
            "options": _preflight("preflightConfirmations", [WS, ORIGIN]),
        },
        "/v1/workspaces/{ws}/confirmations/{cid}": {
            "get": {
                "operationId": "showConfirmation",
                "summary": "What a change waiting for this visitor will do",
                "parameters": [WS, ORIGIN, cid],
                "security": [{"identityToken": []}],
                "responses": {"200": _ok("Confirmation", "The summary."), **answered},
            },
            "post": {
                "operationId": "answerConfirmation",
                "summary": "The visitor confirms (the action runs with the params shown) or cancels",
                "parameters": [WS, ORIGIN, cid],
                "security": [{"identityToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ConfirmationAnswer"}}
                    },
                },
                "responses": {
                    "200": _ok("Confirmation", "Confirmed and run, or cancelled."),
                    **answered,
                    "400": _err("Malformed body (invalid_request)."),
                    "413": _err("Body over 64 KiB."),
                    "415": _err("Body is not application/json."),
                    "422": _err("invalid_params."),
                    "500": _err("internal_error."),
                    "502": _err("upstream_error or outcome_unknown."),
                    "504": _err("upstream_timeout."),
                },
            },
            "options": _preflight("preflightConfirmation", [WS, ORIGIN, cid]),
        },
        "/.well-known/oauth-protected-resource/v1/workspaces/{ws}/mcp": {
            "get": {
                "operationId": "protectedResourceMetadata",
                "summary": "RFC 9728 metadata of the workspace's MCP endpoint (its identity issuer, if set)",
                "parameters": [WS],
                "responses": {
                    "200": _ok("ProtectedResource", "The metadata."),
                    "404": COMMON["404"],
                    "429": COMMON["429"],
                    "503": COMMON["503"],
                },
            },
        },
    }

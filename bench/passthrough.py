"""The baseline for bench_daemon.py: a bare pass-through proxy, no checks of any kind.

POST /proxy makes the same two sandbox calls `stripe.list_my_subscriptions` makes (find the customer
by email, list their subscriptions) with a fixed key and a keep-alive client, and returns the JSON.

    python bench/passthrough.py --port P --sandbox URL --key-env VAR
"""

import argparse
import os

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sandbox", required=True)
    p.add_argument("--key-env", required=True)
    args = p.parse_args()
    client = httpx.AsyncClient(
        base_url=args.sandbox + "/stripe",
        timeout=10,
        headers={"Authorization": "Bearer " + os.environ[args.key_env], "Stripe-Version": "2025-03-31.basil"},
    )

    async def proxy(request):  # noqa: ANN001, ANN202
        await request.body()
        customers = (
            await client.get("/v1/customers", params={"email": "ada@example.com", "limit": 100})
        ).json()
        cid = customers["data"][0]["id"]
        subs = (
            await client.get("/v1/subscriptions", params={"customer": cid, "status": "all", "limit": 100})
        ).json()
        return JSONResponse({"ok": True, "result": subs["data"]})

    app = Starlette(routes=[Route("/proxy", proxy, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

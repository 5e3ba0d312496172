"""A faithful local stand-in for the eight vendor APIs botctl's connectors call.

Entry points (each imports starlette/uvicorn only when called):

* `botctl.sandbox.app.create_app()`: the Starlette app.
* `botctl.sandbox.server.serve()`: run it in the foreground with uvicorn.
* `botctl.sandbox.testing.running_sandbox()`: run it in a background thread for tests.

This module stays import-free so importing the package costs nothing.
"""

"""The test OpenID provider (server.mjs) and its Python harness."""

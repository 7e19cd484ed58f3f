"""Serving: the batching engine (`engine`), adapters over one base (`adapters`), and the HTTP server."""

"""k2-query-api: read-only HTTP access to `market_data.trades`, served by `python -m k2.api`.

One job per module: `settings` (environment), `app` (assembly and /health), `routes` (the v1
endpoints), `auth`, `correlation`, `errors` (the error envelope), `health` (readiness probe),
`models` (the documented JSON), `serialize` (Arrow rows to JSON), `query` (validated
parameters), `repository` (the read contract), `compute` (the Arrow work every repository
shares); on the Iceberg side `catalog` (REST client with timeouts), `filters` (pushdown
expressions), `replica` (the in-memory copy kept current commit by commit) and
`iceberg_repository`; `memory` is an in-memory repository for tests.
"""

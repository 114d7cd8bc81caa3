"""k2-query-api: read-only HTTP access to `market_data.trades`, served by `python -m k2.api`.

The modules each do one job: `settings` (environment), `app` (assembly), `routes` (the v1
endpoints), `auth`, `correlation`, `errors`, `health`, `models` (the documented JSON),
`serialize` (Arrow rows to JSON), `query` (validated parameters), `repository` (the read
contract), `compute` (the Arrow work every repository shares), `filters` and `catalog` and
`iceberg_repository` (the Iceberg side), `memory` (an in-memory repository for tests).
"""

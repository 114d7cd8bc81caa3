// Pins the MinIO server built by the `go` fetch step (see image.toml). This module has no code.
// The version is the pseudo-version of tag RELEASE.2025-10-15T17-29-55Z (commit 9e49d5e7a648);
// `go 1.24.0` matches MinIO's own go.mod so the binary gets the same GODEBUG defaults.
module k2.local/images/minio

go 1.24.0

require github.com/minio/minio v0.0.0-20251015172955-9e49d5e7a648

-- Database for the schema registry (Apicurio SQL storage). psql runs this as POSTGRES_USER,
-- so that user owns it. Idempotent in case POSTGRES_DB is also `registry`.
SELECT 'CREATE DATABASE registry' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'registry')
\gexec

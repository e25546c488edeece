"""Operating the platform: `flask check`, `flask backup` / `flask restore`, `/healthz`
and structured request logs. Imports only ``core``; no capability depends on it."""

# A complete gwsync configuration using every attribute. Token files are
# resolved relative to this file.

public {
  address              = "127.0.0.1:8500"
  token_file           = "public.token"
  read_token_file      = "public-read.token"
  allow_stale          = true
  timeout              = "5s"
  max_in_flight_per_dc = 8
  max_conns_per_host   = 32
  max_staleness        = "1500ms"
}

query {
  # gwsync creates/updates its own template query in each source DC.
  manage       = true
  prefix       = "gwsync-"
  only_passing = true
  share_window = "3s"
  failover {
    nearest_n   = 3
    datacenters = ["dc2", "dc3"]
  }
}

services {
  include = ["*"]
  exclude = ["consul", "internal-*"]
  tags    = ["public"]
}

safety {
  max_delete_fraction = 0.25
  delete_guard_min    = 10
}

mirror {
  node_prefix      = "gws-"
  kv_prefix        = "gwsync/"
  marker_interval  = "30s"
  read_concurrency = 8
  max_sync_age     = "30m"
  txn_concurrency  = 4
}

events {
  enabled = true
  wait    = "2m"
  rate    = 2.5
  burst   = 20
}

retry {
  min_backoff = "500ms"
  max_backoff = "1m"
}

resolver {
  max_marker_age = "3m"
  snapshot_path  = "snapshots/%g.json"
  max_services   = 5000
  idle_timeout   = "15m"
  public_rate    = 10
}

ha {
  replica_id  = "gwsync-0"
  session_ttl = "15s"
  lock_delay  = "2s"
}

gateway "edge-bj" {
  source_datacenter = "dc1"
  schedule          = "@every 15s"
  query_prefix      = "local-"
  services {
    include = ["web-*", "team/*"]
  }
  dedicated {
    address         = "127.0.0.1:9500"
    token_file      = "edge-bj.token"
    read_token_file = "edge-bj-read.token"
    timeout         = "2s"
  }
}

gateway "edge-sh" {
  source_datacenter = "dc2"
  schedule          = "*/1 * * * *"
  query_prefix      = ""
  dedicated {
    address    = "https://127.0.0.1:9501"
    token      = "inline-edge-sh"
    read_token = "inline-edge-sh-read"
    tls {
      server_name          = "consul.edge-sh"
      insecure_skip_verify = false
    }
  }
}

gateway "edge-gz" {
  source_datacenter = "dc1"
  dedicated {
    address        = "127.0.0.1:9502"
    token_env      = "EDGE_GZ_TOKEN"
    read_token_env = "EDGE_GZ_READ_TOKEN"
  }
}

admin {
  address    = "127.0.0.1:9310"
  token_file = "admin.token"
}

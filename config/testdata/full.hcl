# A complete gwsync configuration using every attribute, as in the design
# sketch. Token files are resolved relative to this file.

public {
  address              = "127.0.0.1:8500"
  token_file           = "public.token"
  allow_stale          = true
  timeout              = "5s"
  max_in_flight_per_dc = 8
  max_conns_per_host   = 32
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
}

gateway "edge-bj" {
  source_datacenter = "dc1"
  schedule          = "@every 15s"
  dedicated {
    address    = "127.0.0.1:9500"
    token_file = "edge-bj.token"
    timeout    = "2s"
  }
}

gateway "edge-sh" {
  source_datacenter = "dc2"
  schedule          = "*/1 * * * *"
  dedicated {
    address = "https://127.0.0.1:9501"
    token   = "inline-edge-sh"
    tls {
      server_name          = "consul.edge-sh"
      insecure_skip_verify = false
    }
  }
}

gateway "edge-gz" {
  source_datacenter = "dc1"
  dedicated {
    address   = "127.0.0.1:9502"
    token_env = "EDGE_GZ_TOKEN"
  }
}

admin {
  address    = "127.0.0.1:9310"
  token_file = "admin.token"
}

public { address = "127.0.0.1:8500" }

gateway "edge" {
  source_datacenter = "dc1"
  dedicated { address = "127.0.0.1:9500" }
}

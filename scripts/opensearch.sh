#!/usr/bin/env bash
# A real OpenSearch for tests and benchmarks: scripts/elasticsearch.sh with
# KEATRAIL_SEARCH_ENGINE=opensearch (same commands: fetch, start, stop, resume, url).
exec env KEATRAIL_SEARCH_ENGINE=opensearch bash "$(dirname "$0")/elasticsearch.sh" "$@"

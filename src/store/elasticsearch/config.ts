import { z } from 'zod'

export const elasticsearchStoreConfigSchema = z.object({
  url: z.string().url().describe('Elasticsearch (or OpenSearch) URL, e.g. http://127.0.0.1:9200'),
  nodes: z.array(z.string().url()).max(32).optional()
    .describe('Further nodes of the same cluster (url is the first): requests go round-robin, and a node that fails is marked dead and the request retried on another. No sniffing: the addresses a cluster advertises may not be reachable from keatrail (containers, NAT), and a site\'s few nodes are known'),
  username: z.string().optional().describe('Basic-auth user (with password)'),
  password: z.string().optional().describe('Basic-auth password; prefer the KEATRAIL_ES_PASSWORD environment variable'),
  apiKey: z.string().optional().describe('API key (base64 id:key); prefer KEATRAIL_ES_API_KEY'),
  caFile: z.string().optional().describe('PEM file of the CA that signed the cluster\'s certificate'),
  namespace: z.string().regex(/^[a-z0-9][a-z0-9_]*$/).default('default').describe('Data stream namespace: logs-kea.dhcp4-<namespace>'),
  bulk: z.object({
    flushBytes: z.number().int().positive().default(5_000_000).describe('A batch\'s events are sent in bulk requests of about this many bytes'),
    flushIntervalMs: z.number().int().positive().optional().describe('Ignored (accepted so that older configs still load): each batch is sent whole as soon as it is written'),
    concurrency: z.number().int().min(1).max(32).default(4).describe('Bulk requests in flight'),
    retries: z.number().int().min(0).default(5).describe('Per-document retries of 429 (too many requests) and 5xx at short waits (1 s, doubled each time); after them a document answered 429 or 502–504 (a shard unavailable) is still sent again, retry.maxMs apart at most, each time logged, until the cluster takes it (the write waits: backpressure), and one answered another 5xx (500) is dead-lettered')
  }).strict().default({ flushBytes: 5_000_000, concurrency: 4, retries: 5 })
    .describe('How a batch of events is sent in bulk requests (src/store/elasticsearch/bulk.ts)'),
  retry: z.object({
    initialMs: z.number().int().positive().default(500).describe('First wait after a failed bulk request'),
    maxMs: z.number().int().positive().default(30_000).describe('Longest wait between retries (exponential, capped)')
  }).strict().default({ initialMs: 500, maxMs: 30_000 })
    .describe('A whole bulk request that fails (cluster down) is retried with backoff until it succeeds or the store closes'),
  refresh: z.boolean().default(false).describe('Refresh after each write so it is searchable at once (tests only: costs throughput)'),
  requestTimeoutMs: z.number().int().positive().default(30_000).describe('Timeout of one request'),
  queryTimeoutMs: z.number().int().positive().default(10_000)
    .describe('Time budget of one event search, count, histogram or top-values read: Elasticsearch stops the search (`timeout`) and the request is abandoned a second later; answered KEATRAIL_ERR_QUERY_TIMEOUT (503)')
}).strict()

export type ElasticsearchStoreConfig = z.input<typeof elasticsearchStoreConfigSchema>

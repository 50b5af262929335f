import { z } from 'zod'
import { ZSTD_AVAILABLE } from './blocks/compress.js'

export const sqliteStoreConfigSchema = z.object({
  path: z.string().min(1).describe('Database file; created with its directory if missing'),
  layout: z.enum(['rows', 'blocks']).default('blocks')
    .describe('blocks: events in compressed blocks with per-block postings and token blooms (~1/30 of the bytes, several times the write rate); rows: a row per event with ten indexes and full text (the layout of keatrail before 2026-12; a file keeps the layout it was written with: `keatrail store migrate` converts it)'),
  synchronous: z.enum(['full', 'normal']).default('full')
    .describe('full: a written batch survives power loss (fsync per commit); normal: survives a crash of keatrail, not of the machine'),
  // 100 ms: better-sqlite3 waits for a lock synchronously, on the event loop that also reads
  // UDP and answers /healthz; at 20k datagrams/s a 5 s wait is 100k datagrams the kernel drops
  // before the source can even spill them. The pipeline retries a failed write with backoff
  // (200 ms doubling), so a longer wait here buys nothing but a frozen loop.
  busyTimeoutMs: z.number().int().min(0).default(100)
    .describe('How long a write waits, blocking the event loop, for a lock another process holds before it fails with SQLITE_BUSY (the pipeline retries the batch with backoff); also the readers\' wait'),
  compression: z.enum(['zstd', 'deflate']).optional()
    .refine((c) => c !== 'zstd' || ZSTD_AVAILABLE, 'zstd needs zstd-napi, which did not load in this keatrail (reinstall it with npm ci so that it builds, or use deflate)')
    .describe('How blocks written from now on are compressed (the blocks layout; each block records its own, so a file mixes them): zstd (level 1; the default when zstd-napi loaded) or deflate (raw, level 1: any Node reads it; 75 bytes per event against 70 with zstd, at about the same rate, bench:store — the default otherwise)'),
  cacheMiB: z.number().int().min(2).max(4096).default(32)
    .describe('SQLite page cache of the connection; the indexes written by every batch should fit (SQLite\'s own default is 2 MiB)'),
  // 0 by default: mapped pages count in the process's RSS, and a collector's budget is 300 MiB.
  mmapMiB: z.number().int().min(0).max(1_048_576).default(0)
    .describe('Map up to this much of the database file for the store connection\'s reads (SQLite mmap_size): a read of a page then costs no system call and no copy. For read-heavy batch work on files larger than the page cache (keatrail lease attribute maps 1 GiB: 100,000 rows against 10M events in 15–18 s against 20–23 s, bench/attribute); mapped pages count in the RSS'),
  leaseDerivation: z.object({
    maxPending: z.number().int().min(1).default(20_000)
      .describe('Lease observations of stored events held before they are derived into intervals in one transaction'),
    maxDelayMs: z.number().int().min(0).default(1000)
      .describe('Longest time an observation waits to be derived (lease queries in this process derive pending ones first)')
  }).strict().default({ maxPending: 20_000, maxDelayMs: 1000 })
    .describe('Lease intervals are derived from stored events in larger transactions than the events\' own: each commit rewrites every index page it touched, and the lease indexes are keyed by address and client'),
  readers: z.object({
    workers: z.number().int().min(0).max(16).default(2)
      .describe('Worker threads answering event searches, counts, histograms, top values and lease histories, each with a read-only connection, so that no query holds up ingestion or the API; 0 reads on the main thread (always so for :memory:, which other connections cannot open)'),
    queryTimeoutMs: z.number().int().min(1).default(10_000)
      .describe('A read still running after this long is answered KEATRAIL_ERR_QUERY_TIMEOUT (503) and its worker replaced'),
    maxQueued: z.number().int().min(1).default(64)
      .describe('Reads waiting for a free worker beyond which more are refused KEATRAIL_ERR_QUERY_BUSY (503)'),
    cacheMiB: z.number().int().min(2).max(4096).default(16)
      .describe('SQLite page cache of each worker\'s connection'),
    // 10, not 19. At 19, 1M INFO events ingested while the API answered 50 mixed queries/s lost
    // 14.7 and 16.4 % of the rate against 22.7 and 26.4 % at 10 (bench/e2e --serve 50): but nice
    // is relative to every process on the host, and with two other busy processes a read of the
    // lease contract suite took > 30 s at 19 against 3.7 s at 10 (1.3 s on an idle machine).
    nice: z.number().int().min(0).max(19).default(10)
      .describe('Scheduling niceness of the worker threads (Linux): when the cores are busy, ingestion and the API go first; a lower value gives queries more of a busy machine')
  }).strict().prefault({})
    .describe('Where reads run: event reads, and lease histories by address or client (after the store\'s connection derives pending observations; in the blocks layout a read that meets damaged lease rows is done again there, which rebuilds them from the stored events). Who held an address at a time stays on the store\'s connection: an index lookup of a bounded number of rows'),
  retention: z.object({
    maxAgeDays: z.number().positive().optional().describe('Delete events older than this'),
    maxSizeMiB: z.number().positive().optional().describe('Delete the oldest events while the database is larger than this')
  }).strict().default({}).describe('Retention, applied by applyRetention() (the service runs it periodically)')
}).strict()

export type SqliteStoreConfig = z.input<typeof sqliteStoreConfigSchema>

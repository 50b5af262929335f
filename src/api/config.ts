import { z } from 'zod'
import { UsageError } from '../errors.js'

export const apiConfigSchema = z.object({
  enabled: z.boolean().default(true).describe('Serve the REST API and web UI from keatrail run'),
  host: z.string().default('127.0.0.1').describe('Address to listen on; other than loopback needs API keys (or insecure: true)'),
  port: z.number().int().min(0).max(65535).default(8080).describe('TCP port (0: any free port)'),
  keys: z.array(z.object({
    name: z.string().min(1).describe('Who holds the key (shown in the audit log)'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).describe('SHA-256 (hex) of the key: keatrail never stores keys themselves; make one with `keatrail api-key`'),
    role: z.enum(['read', 'admin']).default('read').describe('read: every GET; admin: also what changes state')
  }).strict()).default([]).describe('API keys, sent as "Authorization: Bearer <key>"; none: no authentication (loopback only)'),
  insecure: z.boolean().default(false).describe('Allow listening beyond loopback without API keys'),
  rateLimit: z.object({
    max: z.number().int().min(1).default(1200).describe('Requests per key per window (and to the public routes, /, /healthz, /readyz, /docs, per client address)'),
    failedAuthMax: z.number().int().min(1).default(60).describe('Requests without a valid key per client address per window (refused with 401, then 429): bounds key guessing and the work unauthenticated clients can cause'),
    windowMs: z.number().int().min(1000).default(60_000).describe('The window'),
    timeoutPenaltyMs: z.number().int().min(0).default(60_000).describe('After one of a key\'s queries ran past the store\'s deadline, that key\'s next requests are refused (429) for this long: a stopped SQLite reader thread keeps running its statement (1–30 s measured), so a key repeating such queries could otherwise hold every reader. 0: off')
  }).strict().prefault({}).describe('Request rate limits, per API key (per client address for requests without one)'),
  auditLog: z.string().optional().describe('File to append every authenticated read to (JSON lines: key name, client address, route, parameters, status; a batch attribution: one entry, then one short line per row), created mode 0600; default <dataDir>/audit.log. A regular file (a device, FIFO or directory is refused at start). A read whose entry cannot be written (disk full) is refused with 503 KEATRAIL_ERR_AUDIT_WRITE. Reopened on SIGHUP (logrotate postrotate); copytruncate works as is'),
  auditLogMaxBytes: z.number().int().min(65_536).default(1024 ** 3).describe('The audit log file is never written past this size: once full, reads are refused (503 KEATRAIL_ERR_AUDIT_WRITE, counted) until it is rotated (logrotate, then SIGHUP; or copytruncate). A read key repeating batch attributions otherwise grows it ~10 MB a batch until the disk that also holds the store is full; no entry is ever dropped to make room'),
  auditKeyShare: z.number().gt(0).max(1).optional().describe('The part of api.auditLogMaxBytes one key\'s entries may take between rotations; past it, that key\'s reads are refused (429 KEATRAIL_ERR_AUDIT_QUOTA, counted) until the log is rotated, so that no one key can fill the log and stop every other key\'s reads. Unset: 0.5 with two or more keys, 1 with one. Counted from the lines in the file (another process\'s too, and those it held at start, 2 MiB per look, two looks per read); a rotated or truncated file from its start. A key\'s share must be at least 16 KiB'),
  requestTimeoutMs: z.number().int().min(1000).default(30_000).describe('Time a client has to send a whole request; a client that dribbles its request is cut off (fastify\'s default is no limit)'),
  shutdownGraceMs: z.number().int().min(0).default(10_000).describe('At shutdown, responses still being sent after this long are cut off (a running batch attribution at once), so that no client can hold the process open'),
  attributeStallMs: z.number().int().min(100).default(60_000).describe('A batch attribution (POST /api/v1/leases/attribute) whose client takes none of its answers for this long is cut off, freeing the one batch a process runs at a time'),
  cors: z.boolean().default(false).describe('Send CORS headers allowing any origin (off: the UI is served by keatrail itself); needs api.keys')
}).strict()

/** The listen addresses that keep the API on this machine. */
export const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/

export type ApiConfig = z.output<typeof apiConfigSchema>

/**
 * `Access-Control-Allow-Origin: *` on an API without keys lets every web page the operator
 * visits read everything through the browser: CORS only where requests carry a key.
 */
export function corsNeedsKeys (cfg: ApiConfig): void {
  if (cfg.cors && cfg.keys.length === 0) throw new UsageError('api.cors needs api.keys: without keys any web page could read the API through the browser')
}

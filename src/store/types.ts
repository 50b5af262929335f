import { CursorInvalidError } from '../errors.js'
import type { KeaEvent } from '../parse/event.js'
import type { LeaseStore } from '../leases/types.js'
import type { KeaSnapshot, SnapshotQuery, SnapshotStore } from '../kea/snapshot.js'
import type { QueryNode } from '../query/parse.js'

/** Exact-match filters every store supports; values within a field are ORed, fields ANDed. */
export const FILTER_FIELDS = {
  code: 'event.code',
  action: 'event.action',
  dataset: 'event.dataset',
  level: 'log.level',
  logger: 'log.logger',
  host: 'host.name',
  status: 'kea.parse.status',
  mac: 'client.mac',
  hwaddr: 'kea.hwaddr',
  client_id: 'kea.client_id',
  duid: 'kea.duid',
  /** client.ip or any of related.ip */
  ip: 'related.ip',
  subnet_id: 'kea.subnet_id',
  source_id: 'kea.source_id'
} as const
export type FilterField = keyof typeof FILTER_FIELDS

export interface EventQuery {
  /** Inclusive lower bound, epoch ms. */
  from?: number
  /** Exclusive upper bound, epoch ms. */
  to?: number
  /** Words that must all occur in the message (full-text). */
  text?: string
  filters?: Partial<Record<FilterField, ReadonlyArray<string | number>>>
  /** A parsed query-language expression (src/query/), ANDed with the rest. */
  where?: QueryNode
}

export interface SearchRequest extends EventQuery {
  /** By @timestamp, then event.id; default desc (newest first). */
  sort?: 'asc' | 'desc'
  /** Page size, 1…1000. */
  size?: number
  /** Opaque cursor from a previous page of the same query. */
  cursor?: string
}

export interface SearchPage {
  events: KeaEvent[]
  /** Hits of the whole query; `gte` when counting stopped at the bound. */
  total: { value: number, relation: 'eq' | 'gte' }
  /** Present when more results may follow. */
  cursor?: string
}

/** A SearchPage whose events are already JSON text (a JSON array): see Store.searchSerialized. */
export interface SerializedPage extends Omit<SearchPage, 'events'> {
  /** The events as a JSON array, UTF-8 encoded: bytes cross from a worker without a copy and are sent as they are. */
  eventsJson: Uint8Array
}

export interface WriteResult {
  /** Events newly stored. */
  written: number
  /** Events that were already stored (same event.id): a replay. */
  duplicates: number
  /** Events the store rejected; kept in the dead-letter store with the reason. */
  deadLettered: number
  /**
   * Events that replaced a stored one with the same event.id which had parsed worse (stored
   * `unmatched` or `partial`, now parsed better: a re-import with the right pattern). Counted
   * in neither `written` nor `duplicates`; absent when none.
   */
  replaced?: number
}

/** How well an event parsed: a stored event is replaced only by one that parsed better. */
const PARSE_RANK: Record<string, number> = { unmatched: 0, partial: 1, ok: 2 }

/** Whether an incoming event with status `incoming` should replace a stored one with status `stored`. */
export function parsesBetter (incoming: string, stored: string): boolean {
  return (PARSE_RANK[incoming] ?? 0) > (PARSE_RANK[stored] ?? 0)
}

/** What `deleteEvents` did. */
export interface DeleteResult {
  /** Events deleted. */
  deleted: number
  /** Lease keys (scope, type, address or prefix) re-derived without them. */
  rederived: number
  /** Per scope (host.name, '' when none) whose events were deleted: the lease coverage left, and a gap recorded for a hole inside it. */
  scopes: Array<{ scope: string, coverage?: { from: number, to: number }, gap?: { from: number, to: number } }>
}

export interface Bucket { key: number, count: number }
export interface TermCount { value: string, count: number }

export interface WriteOptions { signal?: AbortSignal }

/**
 * What keatrail needs from a place that keeps events. Both stores answer every query the same
 * way (test/store/contract.test.ts). `write` resolves only once the batch is durable: that is
 * what lets a collector advance its checkpoint.
 */
export interface Store {
  readonly kind: 'sqlite' | 'elasticsearch'
  /**
   * Events per write this store does best with, for the sources whose config names no batch size
   * (file sources; their own default otherwise): the composition root passes it on.
   */
  readonly batchEvents?: number
  /**
   * `signal` ends a write still retrying (a cluster that does not answer) with a rejection: the
   * events may be stored in part. A store whose write never waits (SQLite) ignores it.
   */
  write: (events: readonly KeaEvent[], opts?: WriteOptions) => Promise<WriteResult>
  search: (req: SearchRequest) => Promise<SearchPage>
  /**
   * `search`, its events JSON already — where reads run on worker threads, serialised there: the
   * API sends the page as text instead of the collector's thread cloning and serialising ~100 KB
   * of events per page (~0.7 ms of that thread each, bench/e2e --serve). Optional: the API falls
   * back to `search`.
   */
  searchSerialized?: (req: SearchRequest) => Promise<SerializedPage>
  get: (id: string) => Promise<KeaEvent | undefined>
  /** The stored events among `ids` (at most MAX_PAGE_SIZE), in the order of `ids`: one round trip for evidence lines. */
  getMany: (ids: readonly string[]) => Promise<KeaEvent[]>
  /**
   * `getMany` reduced to what an evidence line shows (id, @timestamp, event.original), where a
   * store has it cheaper than whole events: the SQLite blocks read the raw record and its time
   * without re-deriving or cloning the event. Optional: the API falls back to getMany.
   */
  evidence?: (ids: readonly string[]) => Promise<EvidenceLine[]>
  /**
   * The tamper-evidence chain over the stored raw records (src/store/sqlite/chain.ts): its
   * newest link, and a full re-computation. Absent where a store keeps none (the row layout).
   */
  chain?: {
    head: () => Promise<ChainHead | undefined>
    verify: (opts?: ChainVerifyOptions) => Promise<ChainReport>
    /** The link covering each stored record of `ids` (undefined: not stored, or stored before the chain began). */
    proofs: (ids: readonly string[]) => Promise<Array<ChainProof | undefined>>
  }
  count: (q?: EventQuery) => Promise<number>
  /** Events per time bucket of `intervalMs`, buckets keyed by their start. */
  histogram: (q: EventQuery, intervalMs: number) => Promise<Bucket[]>
  /** Most frequent values of a field among the matching events. */
  top: (field: FilterField, q: EventQuery, size: number) => Promise<TermCount[]>
  health: () => Promise<{ ok: boolean, detail: string }>
  /**
   * Deletes the events matching `q` (`keatrail store delete`: one file's or one time range's
   * events) and re-derives the lease history they shaped. Each scope's lease coverage shrinks to
   * the events left; a hole left inside it with no events of the scope is recorded as a gap, so
   * answers there say "not covered" instead of "nobody held it".
   */
  deleteEvents: (q: EventQuery) => Promise<DeleteResult>
  /** Lease history derived from the lifecycle events written (src/leases/). */
  readonly leases: LeaseStore
  /** Kea status snapshots (src/kea/). */
  readonly snapshots: SnapshotPages
  close: () => Promise<void>
}

/** A snapshot query that goes on from a page's cursor. */
export interface SnapshotPageQuery extends SnapshotQuery { cursor?: string }

/**
 * A page of Kea snapshots, oldest first: at most the size asked and MAX_PAGE_BYTES of documents
 * (always one), the rest behind `cursor`. One snapshot of a server with 1,000 subnets is ~131 KB:
 * 10,000 of them in one answer exhausted a 256 MiB heap.
 */
export interface SnapshotPage { snapshots: KeaSnapshot[], cursor?: string }
/** A snapshot page with its documents as one UTF-8 JSON array, made where the read ran (as SerializedPage). */
export interface SerializedSnapshotPage { snapshotsJson: Uint8Array, cursor?: string }

/** A store's snapshots, read in pages (`query` is the first page's snapshots). */
export interface SnapshotPages extends SnapshotStore {
  page: (q: SnapshotPageQuery) => Promise<SnapshotPage>
  /** The same page serialised where it was read (the SQLite store's reader workers): the API sends its bytes as they are. */
  pageSerialized?: (q: SnapshotPageQuery) => Promise<SerializedSnapshotPage>
}

/** One log line behind a lease answer. */
export interface EvidenceLine { id: string, time: string, line: string }

/** An event's evidence line. */
export function evidenceLineOf (e: KeaEvent): EvidenceLine {
  return { id: e.event.id, time: e['@timestamp'], line: e.event.original }
}

export const MAX_PAGE_SIZE = 1000

/**
 * Characters of event documents one page may carry (search, getMany; every store): a page stops
 * adding events once the next would pass it (it always holds one), and the rest follows behind
 * its cursor. 8 MiB: a page of 1,000 ordinary ~1 KB events is ~1 MB, so only pages of outsized
 * events (a flood of 60 KB syslog frames stores ~120 KB each) are cut; 1,000 of those were 120 MB,
 * cloned from a reader worker then serialised by the API, and exhausted a 256 MiB heap.
 */
export const MAX_PAGE_BYTES = 8 * 1024 * 1024

/** Picks, in order, the items whose sizes fit in `budget` together; always the first one. */
export function withinBudget<T> (items: readonly T[], sizeOf: (item: T) => number, budget = MAX_PAGE_BYTES): T[] {
  let used = 0
  const kept: T[] = []
  for (const item of items) {
    const n = sizeOf(item)
    if (kept.length > 0 && used + n > budget) break
    kept.push(item)
    used += n
  }
  return kept
}

/** What `getMany` looks up: `ids` without repeats, at most MAX_PAGE_SIZE. */
export function idsToGet (ids: readonly string[]): string[] {
  return [...new Set(ids)].slice(0, MAX_PAGE_SIZE)
}

/** `getMany`'s answer: the events found, in the order of `ids`. */
export function inIdOrder (ids: readonly string[], found: ReadonlyMap<string, KeaEvent>): KeaEvent[] {
  return ids.flatMap((id) => { const e = found.get(id); return e === undefined ? [] : [e] })
}
/** Histogram buckets one answer may hold (a year of hours is 8,760), in every store. */
export const MAX_BUCKETS = 10_000
/** Longest histogram interval: the SQLite store keeps µs, and interval × 1000 must stay an exact integer (≈ 285 years). */
export const MAX_INTERVAL_MS = Math.floor(Number.MAX_SAFE_INTEGER / 1000)

/** Totals are exact up to this many hits, then reported as "at least". */
export const TOTAL_BOUND = 10_000

export interface Cursor { t: string, id: string }

export function encodeCursor (c: Cursor): string {
  return Buffer.from(JSON.stringify([c.t, c.id])).toString('base64url')
}

export function decodeCursor (s: string): Cursor | undefined {
  try {
    const v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as unknown
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return { t: v[0], id: v[1] }
  } catch { /* fall through */ }
  return undefined
}

/** A cursor whose time is a whole number (the SQLite stores' events, both stores' snapshots): at most 16 digits, exact as a double; else KEATRAIL_ERR_CURSOR_INVALID. */
export function decodeTimeCursor (s: string): { ts: number, id: string } {
  const c = decodeCursor(s)
  if (c === undefined || !/^-?\d{1,16}$/.test(c.t)) throw new CursorInvalidError()
  return { ts: Number(c.t), id: c.id }
}

/** A link of a store's tamper-evidence chain: its batch's write sequence, when it was stored, its hash (hex). */
export interface ChainHead { seq: number, time: string, link: string }

/** The link that covers a stored record: a report's line is checked against it. */
export interface ChainProof { seq: number, link: string }

/** What `keatrail verify` found. `broken`: the first link that does not hold, and why. */
export interface ChainReport {
  links: number
  records: number
  /** Links whose records were all read and re-hashed. */
  intact: number
  /** Links that lost records to retention or `store delete` (their kept records checked by tag). */
  partial: number
  /** Events in blocks that no link covers (stored before schema 18 made the chain). */
  uncovered: number
  oldest?: ChainHead
  head?: ChainHead
  broken?: { seq: number, time: string, reason: string, record?: { id: string, block: number, position: number } }
  /** The link asked for (a report's head, hex) and where it is in the chain, if it is. */
  named?: { link: string, seq?: number }
}

export interface ChainVerifyOptions {
  progress?: (done: number, total: number) => void
  /** A link (hex) to find: the head an evidence report was made against. */
  named?: string
}

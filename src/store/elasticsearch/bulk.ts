import { setTimeout as sleep } from 'node:timers/promises'
import type { estypes } from '@elastic/elasticsearch'
import type { SearchEngine } from './engine.js'

/** A document the cluster refused (409: already there; any other 4xx but 429; a 500 after the retries). */
export interface BulkRefusal { index: number, status: number, error?: { type?: string | null, reason?: string | null } | null }

export interface BulkCreateOptions {
  /** A request is sent once its body reaches this many characters (≈ bytes: Kea's logs are ASCII). */
  flushBytes: number
  /** Requests in flight. */
  concurrency: number
  /** Times a document answered 429 or 5xx is sent again at the short waits (waitMs, doubled each time); a 500 is then refused. */
  retries: number
  /** Wait before the first retry, ms (doubled each time, up to maxWaitMs). */
  waitMs: number
  /** Longest wait between retries once `retries` are spent. */
  maxWaitMs: number
  /** Ends the retries: the call rejects (the documents still answered 429/5xx are not stored). */
  signal?: AbortSignal
  /** Request bodies to reuse (one per request in flight); without, each request allocates its own. */
  bodies?: BodyPool
  /** Told of each retry past `retries` (the service logs it): documents still waiting, their last answer. */
  onStillRefused?: (documents: number, status: number, reason: string, waitMs: number) => void
}

/**
 * Request bodies reused from one request to the next. A body is given back only after its
 * request was answered (a request that failed or was abandoned may still hold it), and only
 * while it is no larger than `keepBytes`.
 */
export class BodyPool {
  private readonly free: Buffer[] = []
  constructor (private readonly keep: number, private readonly keepBytes: number) {}
  take (): Buffer { return this.free.pop() ?? Buffer.allocUnsafeSlow(1 << 20) }
  give (body: Buffer): void {
    if (this.free.length < this.keep && body.length <= this.keepBytes) this.free.push(body)
  }
}

/** Bodies for a call without a pool: each request allocates its own. */
const NO_POOL = new BodyPool(0, 0)

/** `body` with room for `more` bytes after `used` (grown twice over, the used bytes copied). */
function room (body: Buffer, used: number, more: number): Buffer {
  if (used + more <= body.length) return body
  const grown = Buffer.allocUnsafeSlow(Math.max(body.length * 2, used + more))
  body.copy(grown, 0, 0, used)
  return grown
}

/**
 * Answers of a document to send again until it is taken: 429 (the cluster's queues are full) and
 * the 5xx of a cluster that is not there for a while (502–504: a shard unavailable during a
 * recovery or a rolling restart answers 503 unavailable_shards_exception). Before, a 5xx went to
 * the dead-letter queue at once and a 429 after five retries: a rolling restart moved whole
 * batches there, and a longer outage overflowed it. The write waits instead (backpressure, as
 * for a cluster that does not answer). Another 5xx (500: e.g. an ingest pipeline failing on the
 * document) is sent again only `retries` times: one document failing for ever must not hold every
 * source.
 */
function isTransient (status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504
}

/**
 * `create` of `count` documents, each as its line pair from `lineOf(i)` (the action line and the
 * document, each ending in a newline), in requests of about flushBytes, `concurrency` at a time;
 * items answered 429 or 502–504 are sent again until they are taken (or `signal` aborts), a 500
 * `retries` times; other refusals are returned with their index. A request that fails as a whole
 * (cluster down) rejects: the caller retries the batch, whose stored documents then answer 409.
 *
 * Why not the clients' helpers.bulk: each document is serialized by the caller once per request
 * (the helpers serialize an object per document, then measure each string's UTF-8 length
 * again): a CPU profile of keatrail → Elasticsearch (bench/e2e, INFO) spent 8 % of its samples
 * in the helper's serialize and 5 % in Buffer.byteLength (docs/BENCHMARKS.md, issue 21).
 *
 * Why lines are asked for when their request is built, not all before the first is sent: a
 * batch's ~1.2 KB line strings then die young, joined into the body at once, instead of living
 * through every request of the batch (promoted, marked, compacted). An allocation profile of
 * bench/e2e put ~60 % of the ES path's bytes in those lines and their bodies, and garbage
 * collection took a third of its busy CPU (docs/BENCHMARKS.md, issue 21, session 20). A document
 * sent again is serialized again: retries are rare, and a document's line is the same each time.
 */
export async function bulkCreate (engine: SearchEngine, count: number, lineOf: (index: number) => string, opts: BulkCreateOptions): Promise<{ created: number, refused: BulkRefusal[] }> {
  let created = 0
  const refused: BulkRefusal[] = []
  let pending: number[] = Array.from({ length: count }, (_, i) => i)
  let last = { status: 0, reason: '' }
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (opts.signal?.aborted === true) throw new Error(`bulk write abandoned with ${pending.length} documents still answered ${last.status} ${last.reason}`)
    const again: number[] = []
    const send = async (c: number[], body: Buffer, used: number): Promise<void> => {
      // A Buffer, lines written into it, not one joined string: no join, no copy into a Buffer
      // by the client, no UTF-8 length of the body (~8 % of the busy samples; −10 % CPU per event,
      // docs/BENCHMARKS.md, issue 21, session 20). It needs the client's redaction 'remove'
      // (engine.ts): its default copied a failed request's Buffer body into an object of one
      // property per byte.
      const res = await engine.bulkBody(body.subarray(0, used))
      opts.bodies?.give(body)
      // A 2xx that is no bulk answer (a proxy's page): said as such, not a TypeError.
      if (!Array.isArray(res?.items)) throw new Error(`bulk answered without items: ${JSON.stringify(res)?.slice(0, 200) ?? String(res)}`)
      if (res.items.length !== c.length) throw new Error(`bulk answered ${res.items.length} items for ${c.length} documents`)
      res.items.forEach((item, k) => {
        const r = item.create as estypes.BulkResponseItem
        const i = c[k] as number
        if (r.status === 201) created++
        else if (isTransient(r.status) || (r.status >= 500 && attempt < opts.retries)) { again.push(i); last = { status: r.status, reason: `${r.error?.type ?? ''}: ${r.error?.reason ?? ''}` } }
        else refused.push({ index: i, status: r.status, ...(r.error === undefined ? {} : { error: r.error }) })
      })
    }
    // At most `concurrency` requests in flight, the next body built once one is free; all
    // settle before the batch answers.
    const running = new Set<Promise<void>>()
    let failure: unknown
    for (let k = 0; k < pending.length && failure === undefined;) {
      if (running.size >= opts.concurrency) { await Promise.race(running); continue }
      const chunk: number[] = []
      let body = (opts.bodies ?? NO_POOL).take()
      let used = 0
      for (let size = 0; k < pending.length && size < opts.flushBytes;) {
        const i = pending[k++] as number
        const line = lineOf(i)
        chunk.push(i)
        // A UTF-16 code unit takes at most 3 bytes in UTF-8.
        body = room(body, used, line.length * 3)
        used += body.write(line, used)
        size += line.length
      }
      const p: Promise<void> = send(chunk, body, used).catch((err: unknown) => { failure ??= err }).finally(() => { running.delete(p) })
      running.add(p)
    }
    await Promise.all(running)
    if (failure !== undefined) throw failure
    pending = again.sort((a, b) => a - b)
    if (pending.length === 0) break
    const wait = Math.min(opts.waitMs * 2 ** Math.min(attempt, 30), opts.maxWaitMs)
    if (attempt >= opts.retries) opts.onStillRefused?.(pending.length, last.status, last.reason, wait)
    await sleep(wait, undefined, opts.signal === undefined ? undefined : { signal: opts.signal }).catch(() => {})
  }
  return { created, refused }
}

import type { estypes } from '@elastic/elasticsearch'
import type { SearchEngine } from './engine.js'

/** A document the cluster refused (409: already there; any other status after the 429 retries). */
export interface BulkRefusal { index: number, status: number, error?: { type?: string | null, reason?: string | null } | null }

export interface BulkCreateOptions {
  /** A request is sent once its body reaches this many characters (≈ bytes: Kea's logs are ASCII). */
  flushBytes: number
  /** Requests in flight. */
  concurrency: number
  /** Times a document answered 429 (too many requests) is sent again before it is refused. */
  retries: number
  /** Wait before each 429 retry, ms (doubled each time). */
  waitMs: number
}

/**
 * `create` of every line pair in `lines` (the action line and the document, each ending in a
 * newline, serialized by the caller once), in requests of about flushBytes, `concurrency` at a
 * time; items answered 429 are sent again up to `retries` times, other refusals are returned
 * with their index in `lines`. A request that fails as a whole (cluster down) rejects: the
 * caller retries the batch, whose stored documents then answer 409.
 *
 * Why not the clients' helpers.bulk: each document is serialized by the caller exactly once
 * (the helpers serialize an object per document, then measure each string's UTF-8 length
 * again): a CPU profile of keatrail → Elasticsearch (bench/e2e, INFO) spent 8 % of its samples
 * in the helper's serialize and 5 % in Buffer.byteLength (docs/BENCHMARKS.md, issue 21).
 */
export async function bulkCreate (engine: SearchEngine, lines: readonly string[], opts: BulkCreateOptions): Promise<{ created: number, refused: BulkRefusal[] }> {
  let created = 0
  const refused: BulkRefusal[] = []
  let pending: number[] = lines.map((_, i) => i)
  for (let attempt = 0; pending.length > 0; attempt++) {
    const again: number[] = []
    const chunks: number[][] = []
    let chunk: number[] = []
    let size = 0
    for (const i of pending) {
      chunk.push(i)
      size += (lines[i] as string).length
      if (size >= opts.flushBytes) { chunks.push(chunk); chunk = []; size = 0 }
    }
    if (chunk.length > 0) chunks.push(chunk)
    const send = async (c: number[]): Promise<void> => {
      // One string, not a Buffer written line by line: that took ~15 % less CPU per event, but
      // Buffers live outside V8's heap, and in the chaos suite's Elasticsearch outage the process
      // grew to 337–345 MiB against ~185 with strings (a pool of bodies did not help; not
      // understood yet: docs/BENCHMARKS.md, issue 21).
      const res = await engine.bulkBody(c.map((i) => lines[i]).join(''))
      // A 2xx that is no bulk answer (a proxy's page): said as such, not a TypeError.
      if (!Array.isArray(res?.items)) throw new Error(`bulk answered without items: ${JSON.stringify(res)?.slice(0, 200) ?? String(res)}`)
      if (res.items.length !== c.length) throw new Error(`bulk answered ${res.items.length} items for ${c.length} documents`)
      res.items.forEach((item, k) => {
        const r = item.create as estypes.BulkResponseItem
        const i = c[k] as number
        if (r.status === 201) created++
        else if (r.status === 429 && attempt < opts.retries) again.push(i)
        else refused.push({ index: i, status: r.status, ...(r.error === undefined ? {} : { error: r.error }) })
      })
    }
    // At most `concurrency` requests in flight; all settle before the batch answers.
    const running = new Set<Promise<void>>()
    let failure: unknown
    for (const c of chunks) {
      if (running.size >= opts.concurrency) await Promise.race(running)
      if (failure !== undefined) break
      const p: Promise<void> = send(c).catch((err: unknown) => { failure ??= err }).finally(() => { running.delete(p) })
      running.add(p)
    }
    await Promise.all(running)
    if (failure !== undefined) throw failure
    pending = again.sort((a, b) => a - b)
    if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, opts.waitMs * 2 ** attempt))
  }
  return { created, refused }
}

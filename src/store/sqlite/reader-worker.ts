import { readlinkSync } from 'node:fs'
import { setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { isCodedError } from '../../errors.js'
import { SqliteReader, runRead } from './reader.js'
import { BlockReader } from './blocks/reader.js'
import { isLeaseReadOp, LeaseReader } from './lease-reader.js'
import { isSnapshotReadOp, SnapshotReader } from './snapshots.js'
import type { PoolOp } from './reader-pool.js'

// A reader worker (reader-pool.ts): a read-only connection to the store's WAL file, an event
// reader and a LeaseReader on it, answering one read at a time. Queries run here, not on the
// thread of the sources, the pipeline and the API.

/** `claims`: the pool's claim cells (reader-pool.ts); `marker`: what this worker writes into a read's cell to take it. */
export interface ReaderWorkerData { path: string, layout: 'rows' | 'blocks', busyTimeoutMs: number, cacheMiB: number, nice: number, claims: Int32Array, marker: number }
/** A read, posted to every worker: the one that swaps the read's id in claims[cell] for its marker answers it. */
export interface ReadRequest { id: number, cell: number, op: PoolOp, args: unknown[] }
export type ReadReply = { id: number } & (
  | { ok: true, value: unknown }
  | { ok: false, error: { message: string, code?: string, statusCode?: number, name: string } })

const data = workerData as ReaderWorkerData
// Linux schedules threads, and nice is per thread: this one yields its core to the collector's
// thread (sources, pipeline, API) when both want it. Elsewhere the call fails and is skipped.
if (data.nice !== 0) {
  try { setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), data.nice) } catch { /* not Linux */ }
}
const db = new Database(data.path, { readonly: true, fileMustExist: true, timeout: data.busyTimeoutMs })
db.pragma(`cache_size = -${data.cacheMiB * 1024}`)
const reader = data.layout === 'blocks' ? new BlockReader(db) : new SqliteReader(db)
if (reader instanceof BlockReader) reader.warm()
const leases = new LeaseReader(db)
const snapshots = new SnapshotReader(db)
const port = parentPort
if (port === null) throw new Error('reader-worker.ts runs as a worker thread')

port.on('message', (req: ReadRequest) => {
  // Taken by another worker, or answered by the pool already (its deadline passed): skipped, silently.
  if (Atomics.compareExchange(data.claims, req.cell, req.id, data.marker) !== req.id) return
  let reply: ReadReply
  try {
    // One read transaction per read: its statements see one version of the file (a block's
    // header and frames are read by range, in several statements).
    const op = req.op
    reply = {
      id: req.id,
      ok: true,
      value: db.transaction(() => isLeaseReadOp(op)
        ? leases.run(op, req.args as never)
        : isSnapshotReadOp(op) ? snapshots.run(op, req.args as never) : runRead(reader as SqliteReader, op, req.args as never))()
    }
  } catch (err) {
    const e = err as Error & { statusCode?: number }
    const status = e.statusCode === undefined ? {} : { statusCode: e.statusCode }
    reply = { id: req.id, ok: false, error: { message: e.message, name: e.name, ...(isCodedError(e) ? { code: e.code, ...status } : {}) } }
  }
  port.postMessage(reply, transferList(reply))
})

/** The buffers a reply moves to the collector's thread instead of copying: a serialised page's bytes (events or snapshots). */
function transferList (reply: ReadReply): ArrayBuffer[] {
  if (!reply.ok || typeof reply.value !== 'object' || reply.value === null) return []
  const bytes = 'eventsJson' in reply.value ? reply.value.eventsJson : 'snapshotsJson' in reply.value ? reply.value.snapshotsJson : undefined
  return bytes instanceof Uint8Array && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer ? [bytes.buffer] : []
}
port.postMessage('ready')

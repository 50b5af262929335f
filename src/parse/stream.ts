import { createReadStream, openSync, readSync, closeSync } from 'node:fs'
import { pipeline, type Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { InputReadError, InputTruncatedError, isCodedError, withCause, type CodedError } from '../errors.js'
import type { KeaEvent } from './event.js'
import { LineSplitter } from './lines.js'
import { identityFromHead, RecordParser, type ParseStats, type RecordParserOptions } from './parser.js'

export interface ParseStreamOptions extends Omit<RecordParserOptions, 'sourceId'> {
  /** Fixed source identity; by default the hash of the first line (see sourceIdentity). */
  sourceId?: string
  maxLineBytes?: number
  /** Receives the parser's live counters when it starts: what was read before an input error. */
  onStats?: (stats: ParseStats) => void
}

const SLICE_BYTES = 64 * 1024

/**
 * Parses a whole byte stream. Events are handed over per input chunk and the next chunk is
 * read only after `onBatch` resolves: backpressure is that await.
 */
export async function parseStream (
  input: AsyncIterable<Buffer | string>,
  opts: ParseStreamOptions,
  onBatch: (events: KeaEvent[]) => void | Promise<void>
): Promise<ParseStats> {
  const splitter = new LineSplitter(opts.maxLineBytes === undefined ? {} : { maxLineBytes: opts.maxLineBytes })
  let parser: RecordParser | undefined = opts.sourceId === undefined ? undefined : new RecordParser({ ...opts, sourceId: opts.sourceId })
  let head: Buffer[] = []
  let headBytes = 0
  let batch: KeaEvent[] = []
  const emit = (e: KeaEvent): void => { batch.push(e) }
  const onLine = (line: Parameters<RecordParser['push']>[0]): void => { (parser as RecordParser).push(line, emit) }

  /** Creates the parser once the head names the source; false while it does not yet. */
  const start = (bytes: Buffer, ended: boolean): boolean => {
    const sourceId = identityFromHead(bytes, opts.host, ended)
    if (sourceId === undefined) return false
    parser = new RecordParser({ ...opts, sourceId })
    opts.onStats?.(parser.stats)
    return true
  }

  for await (const raw of input) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw
    let data = chunk
    if (parser === undefined) {
      // Hold data until the first line is complete: it names the source.
      head.push(chunk)
      headBytes += chunk.length
      data = Buffer.concat(head, headBytes)
      if (!start(data, false)) continue
      head = []
      headBytes = 0
    }
    // Small slices keep batches small: events handed over soon die young, in the cheap
    // generation of the garbage collector, and the consumer sees steady flow (bench/parse).
    for (let at = 0; at < data.length; at += SLICE_BYTES) {
      splitter.push(data.subarray(at, at + SLICE_BYTES), onLine)
      if (batch.length > 0) {
        const out = batch
        batch = []
        await onBatch(out)
      }
    }
  }
  if (parser === undefined) {
    const joined = Buffer.concat(head, headBytes)
    start(joined, true)
    splitter.push(joined, onLine)
  }
  const p = parser as RecordParser
  splitter.flush(onLine)
  p.flush(emit)
  if (batch.length > 0) await onBatch(batch)
  return p.stats
}

/**
 * Opens a log file for reading, transparently gunzipping `.gz` files (rotated archives). A read
 * error of the file (it does not exist, it is a directory) reaches whoever reads the stream.
 */
export function openLogFile (path: string): Readable {
  const raw = createReadStream(path, { highWaterMark: 1024 * 1024 })
  if (!isGzip(path)) return raw
  // pipeline, not pipe: a read error of the file ends the gunzip stream with it (pipe would
  // leave it unhandled, and the process would crash).
  return pipeline(raw, createGunzip(), () => {})
}

/** The coded error for a file that could not be read to its end (see openLogFile). */
export function inputError (path: string, err: unknown): CodedError {
  if (isCodedError(err)) return err
  const message = err instanceof Error ? err.message : String(err)
  // zlib's "unexpected end of file": the gzip stream stops before its trailer (a copy cut short,
  // a disk that filled up while it was written). Everything before the cut was read.
  if ((err as { code?: unknown }).code === 'Z_BUF_ERROR') return withCause(new InputTruncatedError(path, message), err)
  return withCause(new InputReadError(path, message), err)
}

function isGzip (path: string): boolean {
  if (path.endsWith('.gz')) return true
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const b = Buffer.alloc(2)
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b
  } catch {
    return false
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { packageRoot } from '../src/paths.js'

// Real-shaped Kea 2.2 logs in the default file pattern, made from the captures in
// test/fixtures/kea: the records of real runs repeated, each with a new timestamp (7 ms apart)
// and, where it has one, a new transaction id, so that every record is distinct. Shared by
// bench/e2e and the chaos tests.

export type Mix = 'info' | 'debug'

const FILES: Record<Mix, string[]> = {
  info: ['kea-2.2.0-dhcp4-INFO-full.log', 'kea-2.2.0-dhcp6-INFO-full.log'],
  debug: ['kea-2.2.0-dhcp4-DEBUG99-full.log.gz', 'kea-2.2.0-dhcp6-DEBUG99-full.log.gz']
}
const HEADER = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /
/**
 * The captures' lease4-wipe (an operator's command, once in the INFO capture): repeated with the
 * rest it would wipe subnet 1 every ~4 s of the log, each time marking every open lease of
 * unknown subnet (src/leases/wipes.ts), which cost bench/e2e 5-15 % of its rate for an input
 * no Kea site logs. Left out; the wipe path is tested, not benchmarked.
 */
const WIPE = /^\S+ \S+ \S+\s+\[[^\]]*\] (?:DHCPSRV_MEMFILE_WIPE_LEASES|LEASE_CMDS_WIPE)/

/** The records (first line and continuation lines) of the captures of one mix. */
export function templateRecords (mix: Mix): string[][] {
  const records: string[][] = []
  for (const f of FILES[mix]) {
    const buf = readFileSync(join(packageRoot(), 'test', 'fixtures', 'kea', f))
    const text = (f.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8')
    for (const line of text.split('\n')) {
      if (line === '' || WIPE.test(line)) continue
      if (HEADER.test(line) || records.length === 0) records.push([line])
      else records[records.length - 1]?.push(line)
    }
  }
  return records
}

export interface Written { lines: number, records: number, bytes: number }

export interface LogOptions {
  startMs?: number
  /** Number of the first record (its transaction id), to continue an earlier log. */
  offset?: number
  /** Also vary the MAC of each record (256 clients per template MAC). */
  varyMac?: boolean
}

/**
 * At least `minLines` lines (whole records), in chunks of about 64k lines; `totals` counts what
 * was produced. Record i is stamped `startMs + 7 i` and gets transaction id 0x<offset + i>.
 */
export function * keaLogChunks (minLines: number, mix: Mix, opts: LogOptions = {}, totals: Written = { lines: 0, records: 0, bytes: 0 }): Generator<Buffer> {
  const tpl = templateRecords(mix)
  const start = opts.startMs ?? Date.UTC(2026, 10, 1)
  const offset = opts.offset ?? 0
  let chunk: string[] = []
  const flush = (): Buffer => {
    const buf = Buffer.from(chunk.join('\n') + '\n')
    totals.bytes += buf.length
    chunk = []
    return buf
  }
  for (let r = 0; totals.lines < minLines; r++) {
    const rec = tpl[r % tpl.length] as string[]
    const i = offset + r
    let first = new Date(start + 7 * i).toISOString().replace('T', ' ').slice(0, 23) + (rec[0] as string).slice(23).replace(/tid=0x[0-9a-f]+/, `tid=0x${i.toString(16)}`)
    if (opts.varyMac === true) first = first.replace(/:0a\]/, `:${(i & 0xff).toString(16).padStart(2, '0')}]`)
    chunk.push(first)
    for (let k = 1; k < rec.length; k++) chunk.push(rec[k] as string)
    totals.lines += rec.length
    totals.records++
    if (chunk.length >= 65536) yield flush()
  }
  if (chunk.length > 0) yield flush()
}

/** Writes at least `minLines` lines (whole records) to `path`, appending when `append`. */
export function writeKeaLog (path: string, minLines: number, mix: Mix, opts: LogOptions & { append?: boolean } = {}): Written {
  const totals: Written = { lines: 0, records: 0, bytes: 0 }
  const fd = openSync(path, opts.append === true ? 'a' : 'w')
  try {
    for (const buf of keaLogChunks(minLines, mix, opts, totals)) writeSync(fd, buf)
  } finally {
    closeSync(fd)
  }
  return totals
}

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

/** The records (first line and continuation lines) of the captures of one mix. */
export function templateRecords (mix: Mix): string[][] {
  const records: string[][] = []
  for (const f of FILES[mix]) {
    const buf = readFileSync(join(packageRoot(), 'test', 'fixtures', 'kea', f))
    const text = (f.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8')
    for (const line of text.split('\n')) {
      if (line === '') continue
      if (HEADER.test(line) || records.length === 0) records.push([line])
      else records[records.length - 1]?.push(line)
    }
  }
  return records
}

export interface Written { lines: number, records: number, bytes: number }

/**
 * Writes at least `minLines` lines (whole records) to `path`, appending when `append`.
 * Record i is stamped `startMs + 7 i` and gets transaction id 0x<offset + i>.
 */
export function writeKeaLog (path: string, minLines: number, mix: Mix, opts: { startMs?: number, offset?: number, append?: boolean } = {}): Written {
  const tpl = templateRecords(mix)
  const fd = openSync(path, opts.append === true ? 'a' : 'w')
  const start = opts.startMs ?? Date.UTC(2026, 10, 1)
  const offset = opts.offset ?? 0
  let lines = 0
  let records = 0
  let bytes = 0
  let chunk: string[] = []
  const flush = (): void => {
    const buf = Buffer.from(chunk.join('\n') + '\n')
    writeSync(fd, buf)
    bytes += buf.length
    chunk = []
  }
  try {
    while (lines < minLines) {
      const rec = tpl[records % tpl.length] as string[]
      const i = offset + records
      const first = rec[0] as string
      chunk.push(new Date(start + 7 * i).toISOString().replace('T', ' ').slice(0, 23) + first.slice(23).replace(/tid=0x[0-9a-f]+/, `tid=0x${i.toString(16)}`))
      for (let k = 1; k < rec.length; k++) chunk.push(rec[k] as string)
      lines += rec.length
      records++
      if (chunk.length >= 65536) flush()
    }
    if (chunk.length > 0) flush()
  } finally {
    closeSync(fd)
  }
  return { lines, records, bytes }
}

import { createReadStream, fstat } from 'node:fs'
import { parse } from 'csv-parse'
import { stringify } from 'csv-stringify/sync'
import { InvalidArgumentError, Option, type Command } from 'commander'
import { InputReadError, isCodedError } from '../errors.js'
import { attributeRows, type AttributionStatus } from '../leases/attribute.js'
import { parseTimeZone } from './options.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, withCommandStore, type StoreOptions } from './store-options.js'

/**
 * Cells that start with = + - @ TAB or CR get a leading ': hostnames and log text come from the
 * network (a DHCP client names itself), and a spreadsheet would run "=HYPERLINK(…)" as a formula.
 */
const CSV_OPTIONS = { escape_formulas: true }

interface AttributeCliOptions extends StoreOptions {
  mmapMib: number
  json?: boolean
  scope?: string
  tz?: string
}

function parseMmap (v: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0 || n > 1_048_576) throw new InvalidArgumentError('a whole number of MiB, 0 to 1048576')
  return n
}

/**
 * The records of a CSV stream; a record the reader cannot read is `{ bad, raw }`, and reading goes
 * on. The stream itself failing (a directory given as the file: EISDIR once reading starts, an
 * I/O error) ends it with KEATRAIL_ERR_INPUT_READ naming `name`.
 */
export async function * csvRecords (input: NodeJS.ReadableStream, name = 'the input'): AsyncGenerator<string[] | { bad: string, raw: string }> {
  // No record size bound: csv-parse's (max_record_size) drops every record after the first
  // one past it. The input is the operator's own file; the API bounds its body instead.
  // A skipped record is answered where it stood: after the records read before it.
  const skipped: Array<{ after: number, bad: string, raw: string }> = []
  const parser = parse({
    bom: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    raw: true,
    on_skip: (err) => {
      // csv-parse's error carries its reading context (records read before it, the raw text).
      const info = err as { records?: number, raw?: string, message?: string } | undefined
      skipped.push({ after: info?.records ?? 0, bad: `unreadable CSV: ${info?.message ?? 'a malformed record'}`, raw: info?.raw?.slice(0, 200) ?? '' })
      return undefined
    }
  })
  input.pipe(parser)
  input.on('error', (err) => parser.destroy(isCodedError(err) ? err : new InputReadError(name, err.message)))
  let read = 0
  const due = function * (upTo: number): Generator<{ bad: string, raw: string }> {
    while (skipped.length > 0 && (skipped[0] as { after: number }).after <= upTo) {
      const { bad, raw } = skipped.shift() as { bad: string, raw: string }
      yield { bad, raw }
    }
  }
  for await (const r of parser as AsyncIterable<{ record: string[] }>) {
    yield * due(read)
    read++
    yield r.record
  }
  yield * due(Number.POSITIVE_INFINITY)
}

export function registerAttribute (lease: Command, io: CliIo): void {
  addStoreOptions(lease.command('attribute'))
    .description('Answer a report\'s rows of address and time (CSV: extra columns kept) with who held each address then: one output row per input row')
    .argument('<file>', 'CSV file, or - for standard input: address,time[,…] (a header row naming them is recognised)')
    .addOption(new Option('--tz <zone>', 'IANA zone of times written without one (otherwise such rows are bad input)').argParser(parseTimeZone))
    .option('--scope <host>', 'only leases of this Kea server or lease domain (as lease at --scope)')
    .option('--json', 'one JSON object per row (NDJSON) instead of CSV')
    // A batch reads lease rows all over the file: mapped, each page read costs no system call
    // and no copy (100,000 rows against 10M events: 15.4–18.3 s against 19.8–22.9 s, bench/attribute).
    .addOption(new Option('--mmap-mib <n>', 'map up to this much of the SQLite store for reading (store.sqlite.mmapMiB; 0: none)').argParser(parseMmap).default(1024))
    .action(async (file: string, o: AttributeCliOptions) => {
      const input = file === '-' ? io.stdin : createReadStream(file)
      // A missing file, or a directory, is the operator's mistake, said before any store is opened.
      if (file !== '-') {
        await new Promise<void>((resolve, reject) => {
          const s = input as ReturnType<typeof createReadStream>
          s.once('open', (fd) => {
            // A directory opens, and fails only once read (EISDIR).
            fstat(fd, (err, st) => {
              if (err === null && !st.isDirectory()) { resolve(); return }
              s.destroy()
              reject(new InputReadError(file, err?.message ?? 'it is a directory, not a CSV file'))
            })
          })
          s.once('error', (err) => { reject(new InputReadError(file, err.message)) })
        })
      }
      const counts = await withCommandStore(o, io, 'read', async (opened) => {
        let columns: string[] = []
        return await attributeRows(opened.store.leases, csvRecords(input, file === '-' ? 'standard input' : file), {
          columns: (names) => {
            columns = names
            if (o.json !== true) io.stdout.write(stringify([names], CSV_OPTIONS))
          },
          row: async (r) => {
            const cells = { ...r.input, ...r.answer } as Record<string, string>
            const text = o.json === true ? JSON.stringify(cells) + '\n' : stringify([columns.map((c) => cells[c] ?? '')], CSV_OPTIONS)
            // Output is written as fast as its reader takes it, never gathered in memory.
            if (!io.stdout.write(text)) await new Promise<void>((resolve) => io.stdout.once('drain', () => { resolve() }))
          }
        }, { ...(o.tz === undefined ? {} : { timeZone: o.tz }), ...(o.scope === undefined ? {} : { scope: o.scope }) })
      }, (cfg) => cfg.store.type === 'sqlite' ? { ...cfg, store: { ...cfg.store, mmapMiB: o.mmapMib } } : cfg)
      const total = Object.values(counts).reduce((a, b) => a + b, 0)
      io.stderr.write(`attributed ${total} row(s): ${(Object.entries(counts) as Array<[AttributionStatus, number]>).map(([k, v]) => `${v} ${k}`).join(', ')}\n`)
      // Done, but not all of it (help: exit code 1): some rows could not be read.
      if (counts['bad-input'] > 0) io.exitCode = 1
    })
}

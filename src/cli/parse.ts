import { once } from 'node:events'
import type { Command } from 'commander'
import type { KeaEvent } from '../parse/event.js'
import { compilePattern } from '../parse/pattern/compile.js'
import { emptyStats, type ParseStats } from '../parse/parser.js'
import { inputError, openLogFile, parseStream } from '../parse/stream.js'
import { InputReadError } from '../errors.js'
import { addPatternOptions, resolvePatternOptions, type PatternOptions } from './pattern-options.js'

interface ParseCliOptions extends PatternOptions {
  stats?: boolean
  quiet?: boolean
}

export function registerParse (program: Command, io: CliIo): void {
  addPatternOptions(program.command('parse'))
    .description('Parse Kea log files (or stdin) into NDJSON events, one per record')
    .argument('[files...]', 'log files (.gz is read transparently); none or "-" reads stdin')
    .option('--stats', 'print counts by parse status and message ID to stderr at the end')
    .option('-q, --quiet', 'do not print the events (use with --stats)')
    .action(async (files: string[], o: ParseCliOptions) => {
      io.exitCode = await runParse(files, o, io)
    })
}

export interface CliIo {
  stdin: NodeJS.ReadableStream
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  exitCode: number
}

async function runParse (files: string[], o: ParseCliOptions, io: CliIo): Promise<number> {
  const resolved = resolvePatternOptions(o)
  // Compile once up front: a bad pattern fails here, before any input is read.
  const compiled = compilePattern(resolved.pattern, { timeZone: resolved.timeZone })
  const total = emptyStats()
  const inputs = files.length === 0 ? ['-'] : files
  const write = async (events: KeaEvent[]): Promise<void> => {
    if (o.quiet === true) return
    let out = ''
    for (const e of events) out += JSON.stringify(e) + '\n'
    if (!io.stdout.write(out)) await once(io.stdout, 'drain')
  }
  for (const file of inputs) {
    let stream: AsyncIterable<Buffer>
    try {
      stream = file === '-' ? io.stdin as AsyncIterable<Buffer> : openLogFile(file)
    } catch (err) {
      throw new InputReadError(file, (err as Error).message)
    }
    let stats: ParseStats
    try {
      stats = await parseStream(stream, {
        pattern: resolved.pattern,
        compiled,
        timeZone: resolved.timeZone,
        countByCode: o.stats === true,
        ...(resolved.host === undefined ? {} : { host: resolved.host }),
        ...(file === '-' ? {} : { path: file })
      }, write)
    } catch (err) {
      throw inputError(file, err)
    }
    mergeStats(total, stats)
  }
  if (o.stats === true) io.stderr.write(formatStats(total))
  return 0
}

function mergeStats (into: ParseStats, s: ParseStats): void {
  into.lines += s.lines
  into.records += s.records
  into.continuationLines += s.continuationLines
  into.invalidUtf8 += s.invalidUtf8
  into.truncated += s.truncated
  for (const k of ['ok', 'partial', 'unmatched'] as const) into.status[k] += s.status[k]
  for (const [code, n] of s.byCode) into.byCode.set(code, (into.byCode.get(code) ?? 0) + n)
}

export function formatStats (s: ParseStats): string {
  const lines = [
    `lines ${s.lines}  records ${s.records}  continuation lines ${s.continuationLines}`,
    `status ok ${s.status.ok}  partial ${s.status.partial}  unmatched ${s.status.unmatched}`,
    `invalid UTF-8 lines ${s.invalidUtf8}  truncated lines ${s.truncated}`,
    'records by message ID:'
  ]
  const sorted = [...s.byCode.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
  for (const [code, n] of sorted) lines.push(`  ${String(n).padStart(8)}  ${code}`)
  return lines.join('\n') + '\n'
}

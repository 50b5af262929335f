import { leaseSetup } from '../leases/config.js'
import { existsSync } from 'node:fs'
import { hostname } from 'node:os'
import type { Command } from 'commander'
import { InputReadError, StoreMissingError, UsageError } from '../errors.js'
import { parseTime } from '../leases/address.js'
import { FINGERPRINT_BYTES, identityFromHead } from '../parse/parser.js'
import { openLogFile } from '../parse/stream.js'
import type { DeleteResult, EventQuery } from '../store/types.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, commandConfig, type StoreOptions } from './store-options.js'
import { asLog, createLogger } from '../app/logger.js'
import { ensureDataDir, sqlitePath, withStore } from '../app/store.js'
import { lockDataDir } from '../app/lock.js'
import { migrateRowsToBlocks } from '../store/sqlite/migrate-layout.js'

interface DeleteOptions extends StoreOptions {
  sourceId?: string[]
  file?: string[]
  from?: string
  to?: string
  host?: string
  yes?: boolean
}

/** The source ids `import` and `run` give a file's events: its first line and the server's name. */
async function fileSourceIds (path: string, hosts: readonly string[]): Promise<string[]> {
  const chunks: Buffer[] = []
  let bytes = 0
  const input = openLogFile(path)
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      chunks.push(chunk)
      bytes += chunk.length
      if (bytes >= FINGERPRINT_BYTES || chunk.includes(10)) break
    }
  } catch (err) {
    throw new InputReadError(path, (err as Error).message)
  } finally {
    input.destroy()
  }
  const head = Buffer.concat(chunks)
  return hosts.map((h) => identityFromHead(head, h, true) as string)
}

function iso (ms: number): string {
  return new Date(ms).toISOString()
}

export function registerStore (program: Command, io: CliIo): void {
  const store = program.command('store').description('Maintenance of the stored events')
  addStoreOptions(store.command('delete'))
    .description('Delete one file\'s or one time range\'s events and re-derive the lease history they shaped (a dry run unless --yes)')
    .option('--source-id <id...>', 'events of these sources (kea.source_id)')
    .option('--file <path...>', 'events read from these files by import or run (identified by their first line and --host, as when they were read)')
    .option('--from <t>', 'events at or after this time (RFC 3339 with offset, or now-24h …)')
    .option('--to <t>', 'events before this time')
    .option('--host <name>', 'only events of this Kea server (host.name); with --file: the name the file was read under (default: this machine\'s, and none, as earlier imports stored)')
    .option('--yes', 'delete; without it, only say what would be deleted')
    .addHelpText('after', '\nExample:\n  keatrail store delete --file /var/log/kea/kea-dhcp4.log.3 --yes\n  keatrail store delete --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z --host kea-a')
    .action(async (o: DeleteOptions) => {
      if (o.sourceId === undefined && o.file === undefined && o.from === undefined && o.to === undefined) {
        throw new UsageError('say which events: --source-id, --file, or a time range (--from / --to)')
      }
      if (o.host === '') throw new UsageError('--host must name a server')
      const from = o.from === undefined ? undefined : parseTime(o.from, '--from')
      const to = o.to === undefined ? undefined : parseTime(o.to, '--to')
      if (from !== undefined && to !== undefined && from >= to) throw new UsageError('--from must be before --to')
      const sources = [...(o.sourceId ?? [])]
      // A file read before import stamped this machine's name carries none: its ids hash ''.
      const hosts = o.host === undefined ? [hostname(), ''] : [o.host]
      for (const f of o.file ?? []) sources.push(...await fileSourceIds(f, hosts))
      const q: EventQuery = {
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
        filters: {
          ...(sources.length === 0 ? {} : { source_id: sources }),
          ...(o.host === undefined ? {} : { host: [o.host] })
        }
      }
      const what = [
        ...(sources.length === 0 ? [] : [`source ${sources.join(', ')}`]),
        ...(o.host === undefined ? [] : [`host ${o.host}`]),
        ...(from === undefined && to === undefined ? [] : [`${from === undefined ? '…' : iso(from)} ≤ time < ${to === undefined ? '…' : iso(to)}`])
      ].join('; ')
      const cfg = commandConfig(o)
      // The store must exist (a typo in --data-dir is an error, not an empty store).
      await withStore(cfg, { mode: 'read', log: asLog(createLogger(cfg.log, io.stderr)) }, async (opened) => {
        if (o.yes !== true) {
          const n = await opened.store.count(q)
          io.stdout.write(`would delete ${n} events (${what}); run again with --yes to delete them\n`)
          return
        }
        // A writer: never beside `keatrail run` on the same data directory.
        ensureDataDir(cfg.dataDir)
        const unlock = lockDataDir(cfg.dataDir)
        let r: DeleteResult
        try {
          r = await opened.store.deleteEvents(q)
        } finally {
          unlock()
        }
        const lines = [`deleted ${r.deleted} events (${what}); lease history re-derived for ${r.rederived} addresses and prefixes`]
        for (const s of r.scopes) {
          const name = s.scope === '' ? '(server not recorded)' : s.scope
          lines.push(`  ${name}: lease coverage ${s.coverage === undefined ? 'none left' : `now ${iso(s.coverage.from)} … ${iso(s.coverage.to)}`}`)
          if (s.gap !== undefined) lines.push(`  ${name}: no events left from ${iso(s.gap.from)} to ${iso(s.gap.to)}: recorded as a gap, lease answers there say "not covered"`)
        }
        io.stdout.write(lines.join('\n') + '\n')
      })
    })
  addStoreOptions(store.command('migrate'))
    .description('Convert an SQLite store written in the row layout (keatrail before 2026-12) into the block layout, in place; resumable')
    .addHelpText('after', '\nStop keatrail run first (the data directory is locked meanwhile). Interrupted, run it again: it continues.\nExample:\n  keatrail store migrate --data-dir /var/lib/keatrail')
    .action(async (o: StoreOptions) => {
      const cfg = commandConfig(o)
      const path = sqlitePath(cfg)
      if (path === undefined) throw new UsageError('store migrate converts the embedded SQLite store; this config uses Elasticsearch')
      if (!existsSync(path)) throw new StoreMissingError(path, 'no database there (check --data-dir / dataDir or store.path)')
      const unlock = lockDataDir(cfg.dataDir)
      const tty = (io.stderr as NodeJS.WriteStream).isTTY === true
      let shown = -1
      try {
        const n = await migrateRowsToBlocks(path, (p) => {
          const pct = p.total === 0 ? 100 : Math.floor((p.converted / p.total) * 100)
          // A bar redrawn in place on a terminal; a line per 10 % in a log.
          if (tty) io.stderr.write(`\r[${'#'.repeat(Math.floor(pct / 5)).padEnd(20, '.')}] ${pct}% ${p.converted.toLocaleString('en')} / ${p.total.toLocaleString('en')} events`)
          else if (Math.floor(pct / 10) > shown) { shown = Math.floor(pct / 10); io.stderr.write(`converted ${p.converted} of ${p.total} events (${pct}%)\n`) }
        }, ...leaseSetup(cfg.leases))
        if (tty) io.stderr.write('\n')
        io.stdout.write(n === 0 ? `${path} holds no events in the row layout: nothing to convert\n` : `converted ${n} events of ${path} into the block layout\n`)
      } finally {
        unlock()
      }
    })
}

import type { Command } from 'commander'
import { UsageError } from '../errors.js'
import type { ChainReport } from '../store/types.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, withCommandStore, type StoreOptions } from './store-options.js'

interface VerifyOptions extends StoreOptions {
  head?: string
  json?: boolean
}

/** What `verify` concludes: the chain holds (and holds the named head), or where it does not. */
export function verdict (r: ChainReport): { ok: boolean, lines: string[] } {
  const lines: string[] = []
  const n = (x: number): string => x.toLocaleString('en')
  const links = (x: number): string => `${n(x)} link${x === 1 ? '' : 's'}`
  if (r.links === 0 && r.broken === undefined) {
    lines.push('no chain: nothing was stored since the store began keeping one')
  } else {
    lines.push(`chain: ${links(r.links)}, ${n(r.records)} records${r.oldest === undefined ? '' : `, oldest kept link ${r.oldest.seq} (${r.oldest.time})`}${r.head === undefined ? '' : `, head ${r.head.link} (link ${r.head.seq}, ${r.head.time})`}`)
    lines.push(`checked: ${links(r.intact)} re-hashed whole; ${n(r.partial)} lost records to retention or store delete (their kept records checked one by one)`)
  }
  if (r.uncovered > 0) lines.push(`not covered: ${n(r.uncovered)} records stored before this store kept a chain (schema 18)`)
  let ok = r.broken === undefined
  if (r.broken !== undefined) {
    const at = r.broken.record === undefined ? '' : `: record ${r.broken.record.id} (block ${r.broken.record.block}, position ${r.broken.record.position})`
    lines.push(`BROKEN at link ${r.broken.seq}${r.broken.time === '' ? '' : ` (stored ${r.broken.time})`}: ${r.broken.reason}${at}`)
  }
  if (r.named !== undefined && r.broken === undefined) {
    if (r.named.seq !== undefined) {
      lines.push(`head ${r.named.link}: link ${r.named.seq} of the chain${r.named.seq === r.head?.seq ? ' (the newest)' : ''}: the records stored up to it are as they were when it was named`)
    } else {
      ok = false
      lines.push(`head ${r.named.link}: not in the chain — the chain was re-computed after it was named, or retention removed it (oldest kept link ${r.oldest?.seq ?? 'none'})`)
    }
  }
  lines.push(ok ? 'OK: every record covered by the chain is as it was stored' : 'FAILED')
  return { ok, lines }
}

export function registerVerify (program: Command, io: CliIo): void {
  addStoreOptions(program.command('verify'))
    .description('Re-compute the tamper-evidence chain over the stored raw records: every record is as it was stored, or the first link that is not (exit 1)')
    .option('--head <hex>', 'the chain head an evidence report names: also fails unless the chain still holds it')
    .option('--json', 'the result as one JSON object')
    .addHelpText('after', '\nExample:\n  keatrail verify --data-dir /var/lib/keatrail')
    .action(async (o: VerifyOptions) => {
      if (o.head !== undefined && !/^[0-9a-f]{64}$/.test(o.head)) throw new UsageError('--head takes the 64 hex digits of a link (as a report names it)')
      const tty = (io.stderr as NodeJS.WriteStream).isTTY === true
      const r = await withCommandStore(o, io, 'read', async (opened) => {
        const chain = opened.store.chain
        if (chain === undefined) throw new UsageError('this store keeps no tamper-evidence chain (the SQLite row layout); convert it with keatrail store migrate')
        return await chain.verify({
          progress: (done, total) => { if (tty && done % 100 === 0) io.stderr.write(`\rverified ${done} of ${total} links`) },
          ...(o.head === undefined ? {} : { named: o.head })
        })
      })
      if (tty) io.stderr.write('\r')
      const v = verdict(r)
      io.stdout.write(o.json === true ? JSON.stringify({ ...r, ok: v.ok }) + '\n' : v.lines.join('\n') + '\n')
      io.exitCode = v.ok ? 0 : 1
    })
}

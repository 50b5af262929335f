import type { Command } from 'commander'
import { z } from 'zod'
import { existsSync, readFileSync, statSync } from 'node:fs'
import Database from 'better-sqlite3'
import { InputReadError, isCodedError, StoreMissingError, StoreSchemaError, UsageError } from '../errors.js'
import { sqlitePath } from '../app/store.js'
import { BlockReader } from '../store/sqlite/blocks/reader.js'
import { chainProofs, verifyChain } from '../store/sqlite/chain.js'
import { MIGRATIONS } from '../store/sqlite/migrations.js'
import { reportFromText } from '../leases/report-html.js'
import type { ChainProof, ChainReport, ChainVerifyOptions, Store } from '../store/types.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, commandConfig, withCommandStore, type StoreOptions } from './store-options.js'

interface VerifyOptions extends StoreOptions {
  head?: string
  report?: string
  json?: boolean
}

/** The largest evidence report `verify --report` reads: 1,000 lines of a 60 KB record, escaped, and their page. */
const MAX_REPORT_BYTES = 128 * 1024 * 1024

/** What `verify --report` needs of an evidence report (src/leases/report.ts). */
const reportSchema = z.object({
  report: z.literal('keatrail evidence report'),
  chain: z.object({ link: z.string().regex(/^[0-9a-f]{64}$/) }).optional(),
  answer: z.object({ status: z.string(), reason: z.string() }),
  evidence: z.array(z.object({ id: z.string(), raw: z.string(), chain: z.object({ seq: z.number(), link: z.string() }).optional() })).max(10_000)
})

const unescape = (s: string): string => s.replace(/<[^>]*>/g, '').replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e] as string)

/** What an HTML report shows that its data does not say (its answer, its evidence lines), or undefined. */
export function shownDiffers (page: string, r: z.infer<typeof reportSchema>): string | undefined {
  const answer = /<div class="answer [^"]*">([\s\S]*?)<\/div>/.exec(page)
  if (answer === null || unescape(answer[1] as string) !== `${r.answer.status}: ${r.answer.reason}`) return 'the answer the page shows is not the one its data holds: it was changed after keatrail made it'
  const lines = [...page.matchAll(/<pre>([\s\S]*?)<\/pre>/g)].map((m) => unescape(m[1] as string))
  const raws = r.evidence.map((e) => e.raw.replace(/\r\n/g, '\n'))
  if (lines.length !== raws.length || lines.some((l, i) => l !== raws[i])) return 'the evidence lines the page shows are not those its data holds: it was changed after keatrail made it'
  return undefined
}

/** Each evidence line of a report compared with the stored record and the link covering it: the problems found. */
type LineSource = Pick<Store, 'getMany'> & { proofs: (ids: readonly string[]) => Promise<Array<ChainProof | undefined>> }

async function checkLines (store: LineSource, lines: z.infer<typeof reportSchema>['evidence']): Promise<string[]> {
  const problems: string[] = []
  const stored = new Map<string, string>()
  for (let i = 0; i < lines.length; i += 500) {
    for (const e of await store.getMany(lines.slice(i, i + 500).map((l) => l.id))) stored.set(e.event.id, e.event.original)
  }
  const proofs = await store.proofs(lines.map((l) => l.id))
  lines.forEach((l, k) => {
    const raw = stored.get(l.id)
    const proof = proofs[k]
    if (raw === undefined) problems.push(`line ${k + 1} (${l.id}): not in the store (deleted, or aged out by retention)`)
    else if (raw !== l.raw) problems.push(`line ${k + 1} (${l.id}): differs from the stored record`)
    else if (l.chain !== undefined && (proof === undefined || proof.seq !== l.chain.seq || proof.link !== l.chain.link)) problems.push(`line ${k + 1} (${l.id}): not covered by the link the report names (${l.chain.seq})`)
  })
  return problems
}

/** `verify` of an SQLite file opened read-only: nothing in it changes, whatever its schema. */
async function verifyFile (path: string, opts: ChainVerifyOptions, lineProblems: (source: LineSource) => Promise<string[]>): Promise<{ r: ChainReport, problems: string[] }> {
  if (!existsSync(path)) throw new StoreMissingError(path, 'no database there (check --data-dir / dataDir or store.path)')
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    const version = db.pragma('user_version', { simple: true }) as number
    const latest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0
    if (version > latest) throw new StoreSchemaError('sqlite', `${path} has schema version ${version}, newer than this keatrail (${latest}); upgrade keatrail`)
    if (version < CHAIN_SCHEMA) throw new UsageError(`${path} has schema version ${version}: it keeps no tamper-evidence chain yet (keatrail keeps one from schema ${CHAIN_SCHEMA} on, for what it stores from then)`)
    const reader = new BlockReader(db)
    // One read transaction: a consistent picture of a file the service may be writing.
    db.prepare('BEGIN').run()
    try {
      const r = verifyChain(db, opts)
      const problems = await lineProblems({ getMany: async (ids) => reader.getMany(ids), proofs: async (ids) => chainProofs(db, (id) => reader.locate(id), ids) })
      return { r, problems }
    } finally {
      db.prepare('COMMIT').run()
    }
  } finally {
    db.close()
  }
}

/** The schema version that made the chain (migrations.ts). */
const CHAIN_SCHEMA = MIGRATIONS.find((m) => m.name === 'tamper-evidence chain')?.version ?? 18

/** What `verify` concludes: the chain holds (and holds the named head), or where it does not. */
export function verdict (r: ChainReport): { ok: boolean, lines: string[] } {
  const lines: string[] = []
  const n = (x: number): string => x.toLocaleString('en')
  const links = (x: number): string => `${n(x)} link${x === 1 ? '' : 's'}`
  if (r.links === 0 && r.broken === undefined) {
    lines.push('no chain: nothing was stored since the store began keeping one')
  } else {
    lines.push(`chain: ${links(r.links)}, ${n(r.records)} records${r.oldest === undefined ? '' : `, oldest kept link ${r.oldest.seq} (${r.oldest.time})`}${r.head === undefined ? '' : `, head ${r.head.link} (link ${r.head.seq}, ${r.head.time})`}`)
    lines.push(`checked: ${links(r.intact)} re-hashed whole; ${n(r.partial)} lost records to retention, store delete or a re-import (re-hashed with the leaves kept for those)`)
  }
  if (r.uncovered > 0) lines.push(`not covered: ${n(r.uncovered)} records stored before this store kept a chain (schema 18)`)
  let ok = r.broken === undefined
  if (r.broken !== undefined) {
    const rec = r.broken.record
    // Elasticsearch has no blocks (-1): the record's place in its link.
    const at = rec === undefined ? '' : `: record ${rec.id} (${rec.block < 0 ? `record ${rec.position + 1} of the link` : `block ${rec.block}, position ${rec.position}`})`
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
    .option('--report <file>', 'an evidence report (keatrail lease report, HTML or JSON): also checks its head is in the chain and each of its lines is the stored record, covered by the link it names')
    .option('--json', 'the result as one JSON object')
    .addHelpText('after', '\nExamples:\n  keatrail verify --data-dir /var/lib/keatrail\n  keatrail verify --report 192.0.2.23.html')
    .action(async (o: VerifyOptions) => {
      if (o.head !== undefined && !/^[0-9a-f]{64}$/.test(o.head)) throw new UsageError('--head takes the 64 hex digits of a link (as a report names it)')
      let report: z.infer<typeof reportSchema> | undefined
      let htmlProblem: string | undefined
      if (o.report !== undefined) {
        let text: string
        try {
          // Bounded: a report holds at most 1,000 evidence lines (~60 KB each at the most).
          const size = statSync(o.report).size
          if (size > MAX_REPORT_BYTES) throw new UsageError(`${o.report} is ${size} bytes: no evidence report is larger than ${MAX_REPORT_BYTES}`)
          text = readFileSync(o.report, 'utf8')
        } catch (err) {
          if (isCodedError(err)) throw err
          throw new InputReadError(o.report, (err as Error).message)
        }
        // A JSON report first (its text may quote a page's markup); otherwise the JSON an HTML
        // report embeds. A BOM and CRLF line ends (editors, mail) are not changes.
        text = text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n')
        let data: unknown
        let html = false
        try {
          data = JSON.parse(text)
        } catch {
          try { data = reportFromText(text); html = true } catch { throw new UsageError(`${o.report} is not a keatrail evidence report (no report JSON in it)`) }
        }
        const parsed = reportSchema.safeParse(data)
        if (!parsed.success) throw new UsageError(`${o.report} is not a keatrail evidence report: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`)
        report = parsed.data
        // An HTML report is what a reader sees: its answer and evidence lines as shown must be
        // those of the data it embeds (compared as text, so that a page made by an older
        // keatrail, whose layout differs, still checks).
        if (html) htmlProblem = shownDiffers(text, report)
        if (o.head !== undefined && report.chain !== undefined && o.head !== report.chain.link) throw new UsageError('--head and the report name different heads: give one')
      }
      const named = o.head ?? report?.chain?.link
      const tty = (io.stderr as NodeJS.WriteStream).isTTY === true
      const opts = {
        progress: (done: number, total: number) => { if (tty && done % 100 === 0) io.stderr.write(`\rverified ${done} of ${total} links`) },
        ...(named === undefined ? {} : { named })
      }
      const lineProblems = async (source: LineSource): Promise<string[]> => report === undefined ? [] : [...(htmlProblem === undefined ? [] : [htmlProblem]), ...await checkLines(source, report.evidence)]
      const path = sqlitePath(commandConfig(o))
      const { r, problems } = path !== undefined
        // The SQLite file read-only, as it is: verifying a copy kept as evidence must not migrate
        // it, derive pending lease history into it or take the service's lock.
        ? await verifyFile(path, opts, lineProblems)
        : await withCommandStore(o, io, 'read', async (opened) => {
          const chain = opened.store.chain
          if (chain === undefined) throw new UsageError('this store keeps no tamper-evidence chain')
          const r = await chain.verify(opts)
          return { r, problems: await lineProblems({ getMany: async (ids) => await opened.store.getMany(ids), proofs: chain.proofs }) }
        })
      if (tty) io.stderr.write('\r')
      const v = verdict(r)
      if (report !== undefined) {
        if (problems.length > 0) v.ok = false
        const lines = problems.length === 0 ? [`report: its ${report.evidence.length} evidence lines are the stored records${report.chain === undefined ? '' : ', each covered by the link it names'}`] : problems.map((p) => `report: ${p}`)
        v.lines.splice(v.lines.length - 1, 1, ...lines, v.ok ? 'OK: every record covered by the chain is as it was stored, and so is every line of the report' : 'FAILED')
      }
      io.stdout.write(o.json === true ? JSON.stringify({ ...r, ...(report === undefined ? {} : { report_problems: problems }), ok: v.ok }) + '\n' : v.lines.join('\n') + '\n')
      io.exitCode = v.ok ? 0 : 1
    })
}

import type { estypes } from '@elastic/elasticsearch'
import type { KeaEvent } from '../../parse/event.js'
import { digestOf, digestOfLeaves, GENESIS, leavesOf, linkOf, recordLeaf } from '../chain-format.js'
import type { ChainHead, ChainProof, ChainReport, ChainVerifyOptions } from '../types.js'
import type { SearchEngine } from './engine.js'

// The tamper-evidence chain in Elasticsearch/OpenSearch (issue 22): the same links as the SQLite
// store's (src/store/sqlite/chain.ts, docs/ARCHITECTURE.md), one document each in
// keatrail-chain-<namespace>, _id the zero-padded sequence. A link lists its records' ids (the
// documents the batch created, in the batch's order) and their leaves (32 bytes each: an index
// of Elasticsearch holds ~1 KB per event anyway); verify reads the records back by id, and a
// record deleted since (an index aged out) leaves its link checkable by its stored leaf. Collectors writing one namespace each append with `create` on the next
// sequence: the one that loses the race (409) reads the head again and appends after it.

export function chainIndex (namespace: string): string {
  return `keatrail-chain-${namespace}`
}

interface LinkDoc { seq: number, time: number, n: number, digest: string, prev: string, link: string, ids: string[], leaves: string }

const idOf = (seq: number): string => String(seq).padStart(16, '0')
/** Ids per read of records (a search by ids). */
const READ_IDS = 1000
/** Attempts to append a link when other collectors keep taking the next sequence. */
const APPEND_ATTEMPTS = 20

export class EsChain {
  private head: { seq: number, link: string } | undefined

  constructor (private readonly engine: SearchEngine, private readonly index: string, private readonly events: string) {}

  /** The newest link as the index has it now (its refresh made first: links are appended without one). */
  private async newest (): Promise<{ seq: number, link: string } | undefined> {
    await this.engine.indices.refresh({ index: this.index, ignore_unavailable: true, allow_no_indices: true })
    const r = await this.engine.search<LinkDoc>({ index: this.index, ignore_unavailable: true, allow_no_indices: true, size: 1, sort: [{ seq: 'desc' }], _source: ['seq', 'link'] })
    const h = r.hits.hits[0]?._source
    return h === undefined ? undefined : { seq: h.seq, link: h.link }
  }

  /** Appends the link of the records a write created (`created`, in the batch's order). */
  async append (created: readonly KeaEvent[], time = Date.now()): Promise<void> {
    if (created.length === 0) return
    const leaves = leavesOf(created.length, (i) => (created[i] as KeaEvent).event.id, (i) => (created[i] as KeaEvent).event.original)
    const digest = digestOfLeaves(leaves)
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      const prev = this.head ?? await this.newest()
      const seq = (prev?.seq ?? 0) + 1
      const prevLink = prev === undefined ? GENESIS : Buffer.from(prev.link, 'hex')
      const link = linkOf(prevLink, seq, created.length, time, digest).toString('hex')
      const doc: LinkDoc = { seq, time, n: created.length, digest: digest.toString('hex'), prev: prevLink.toString('hex'), link, ids: created.map((e) => e.event.id), leaves: leaves.toString('base64') }
      // No refresh per link (a forced refresh per batch would cost every write): a create on the
      // next sequence's _id conflicts in real time, and the head is read again (refreshed) then.
      const r = await this.engine.bulk({ operations: [{ create: { _index: this.index, _id: idOf(seq) } }, doc] })
      const item = r.items[0]?.create
      if (item?.status === 201) { this.head = { seq, link }; return }
      if (item?.status !== 409) throw new Error(`appending chain link ${seq} failed: ${item?.status ?? '?'} ${item?.error?.reason ?? ''}`)
      // Another collector took this sequence: append after its link.
      this.head = undefined
    }
    throw new Error(`appending a chain link lost ${APPEND_ATTEMPTS} races for the next sequence`)
  }

  async headLink (): Promise<ChainHead | undefined> {
    await this.engine.indices.refresh({ index: this.index, ignore_unavailable: true, allow_no_indices: true })
    const r = await this.engine.search<LinkDoc>({ index: this.index, ignore_unavailable: true, allow_no_indices: true, size: 1, sort: [{ seq: 'desc' }], _source: ['seq', 'link', 'time'] })
    const h = r.hits.hits[0]?._source
    return h === undefined ? undefined : { seq: h.seq, time: new Date(h.time).toISOString(), link: h.link }
  }

  /** Raw records by id (absent: not stored). */
  private async records (ids: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    for (let i = 0; i < ids.length; i += READ_IDS) {
      const chunk = ids.slice(i, i + READ_IDS)
      const r = await this.engine.search<{ event: { id: string, original: string } }>({ index: this.events, ignore_unavailable: true, allow_no_indices: true, size: chunk.length, query: { ids: { values: chunk } }, _source: ['event.id', 'event.original'] })
      for (const h of r.hits.hits) if (h._source !== undefined) out.set(h._id as string, h._source.event.original)
    }
    return out
  }

  async verify (opts: ChainVerifyOptions = {}): Promise<ChainReport> {
    const wanted = opts.named
    await this.engine.indices.refresh({ index: [this.index, this.events], ignore_unavailable: true, allow_no_indices: true })
    const total = (await this.engine.count({ index: this.index, ignore_unavailable: true, allow_no_indices: true })).count
    const events = (await this.engine.count({ index: this.events, ignore_unavailable: true, allow_no_indices: true })).count
    const report: ChainReport = { links: 0, records: 0, intact: 0, partial: 0, uncovered: 0, ...(wanted === undefined ? {} : { named: { link: wanted } }) }
    let covered = 0
    // Links are never pruned here: the first one follows the zeros a chain begins with.
    let prev = GENESIS.toString('hex')
    let after: estypes.SortResults | undefined
    for (;;) {
      const page = await this.engine.search<LinkDoc>({ index: this.index, ignore_unavailable: true, allow_no_indices: true, size: 100, sort: [{ seq: 'asc' }], ...(after === undefined ? {} : { search_after: after }) })
      const hits = page.hits.hits
      for (const hit of hits) {
        const l = hit._source as LinkDoc
        const time = new Date(l.time).toISOString()
        const fail = (reason: string, record?: { id: string, block: number, position: number }): ChainReport => {
          report.broken = { seq: l.seq, time, reason, ...(record === undefined ? {} : { record }) }
          return report
        }
        report.links++
        if (report.oldest === undefined) report.oldest = { seq: l.seq, time, link: l.link }
        if (prev !== l.prev) return fail(report.links === 1 ? 'it does not follow the zeros a chain begins with (older links were removed or altered)' : 'its stored predecessor is not the link before it (a link was altered, removed or inserted)')
        const digest = Buffer.from(l.digest, 'hex')
        if (linkOf(Buffer.from(l.prev, 'hex'), l.seq, l.n, l.time, digest).toString('hex') !== l.link || l.ids.length !== l.n) return fail('its link is not the hash of its predecessor, numbers and digest')
        prev = l.link
        if (wanted !== undefined && report.named !== undefined && l.link === wanted) report.named.seq = l.seq
        const leaves = Buffer.from(l.leaves, 'base64')
        if (leaves.length !== 32 * l.n || !digestOf(Array.from({ length: l.n }, (_, i) => leaves.subarray(32 * i, 32 * i + 32))).equals(digest)) return fail('its records\' leaves do not hash to its digest (the link was altered)')
        const stored = await this.records(l.ids)
        let missing = 0
        for (let i = 0; i < l.ids.length; i++) {
          const id = l.ids[i] as string
          const raw = stored.get(id)
          // Deleted since (an index aged out, store delete): its link still holds by its leaf.
          if (raw === undefined) { missing++; continue }
          const leaf = recordLeaf(id, raw)
          if (!leaf.equals(leaves.subarray(32 * i, 32 * i + 32))) {
            // Replaced since by a re-import that read it better, with a link of its own: this
            // link's version is gone (as if deleted), the record is checked by the later link.
            if (await this.laterLinkHolds(id, l.seq, leaf)) { missing++; continue }
            return fail('a record differs from what was stored', { id, block: -1, position: i })
          }
        }
        covered += l.n - missing
        report.records += l.n - missing
        if (missing > 0) report.partial++
        else report.intact++
        report.head = { seq: l.seq, time, link: l.link }
        opts.progress?.(report.links, total)
      }
      if (hits.length < 100) break
      after = hits[hits.length - 1]?.sort
    }
    report.uncovered = Math.max(0, events - covered)
    return report
  }

  /** A link after `seq` lists record `id` with leaf `leaf`. */
  private async laterLinkHolds (id: string, seq: number, leaf: Buffer): Promise<boolean> {
    const r = await this.engine.search<LinkDoc>({ index: this.index, ignore_unavailable: true, allow_no_indices: true, size: 10, query: { bool: { filter: [{ terms: { ids: [id] } }, { range: { seq: { gt: seq } } }] } }, sort: [{ seq: 'desc' }], _source: ['seq', 'ids', 'leaves'] })
    return r.hits.hits.some((h) => {
      const l = h._source as LinkDoc
      const k = l.ids.indexOf(id)
      return k >= 0 && Buffer.from(l.leaves, 'base64').subarray(32 * k, 32 * k + 32).equals(leaf)
    })
  }

  /** The link covering each id: the newest that lists it (after a repair, the one with its current text). */
  async proofs (ids: readonly string[]): Promise<Array<ChainProof | undefined>> {
    await this.engine.indices.refresh({ index: this.index, ignore_unavailable: true, allow_no_indices: true })
    const found = new Map<string, ChainProof>()
    for (let i = 0; i < ids.length; i += READ_IDS) {
      const chunk = ids.slice(i, i + READ_IDS)
      // Newest first; a record in several links (a repair, a link retried) takes the newest.
      const r = await this.engine.search<LinkDoc>({ index: this.index, ignore_unavailable: true, allow_no_indices: true, size: 10 * chunk.length, query: { terms: { ids: chunk } }, sort: [{ seq: 'desc' }], _source: ['seq', 'link', 'ids'] })
      const want = new Set(chunk)
      for (const h of r.hits.hits) {
        const l = h._source as LinkDoc
        for (const id of l.ids) if (want.has(id) && !found.has(id)) found.set(id, { seq: l.seq, link: l.link })
      }
    }
    return ids.map((id) => found.get(id))
  }
}

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { emptyCounters, type Emit, type Source } from '../../src/pipeline/types.js'
import { FileSource } from '../../src/sources/file/source.js'
import { JournalSource } from '../../src/sources/journal/source.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture } from '../helpers/fixtures.js'

const quiet = { info: () => {}, error: () => {} }
const stores: SqliteStore[] = []
afterEach(async () => { for (const s of stores.splice(0)) await s.close() })

function store (): SqliteStore {
  const s = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-start-')), 'k.db') })
  stores.push(s)
  return s
}

/** What a source did, for the assertions. */
interface Trace { started: number, ran: number, closed: number }

/** A source like SyslogSource: start() opens something, run() starts itself if needed and closes it on abort. */
function opening (name: string, startFails?: Error): Source & { trace: Trace, start: () => Promise<void> } {
  const trace: Trace = { started: 0, ran: 0, closed: 0 }
  let open = false
  const start = async (): Promise<void> => {
    if (open) return
    await new Promise((resolve) => setImmediate(resolve))
    if (startFails !== undefined) throw startFails
    open = true
    trace.started++
  }
  return {
    name,
    trace,
    counters: emptyCounters(),
    start,
    run: async (_emit: Emit, signal: AbortSignal) => {
      trace.ran++
      await start()
      // As SyslogSource does: listens only after its first await.
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      open = false
      trace.closed++
    },
    checkpoint: () => {}
  }
}

/** A source without start() whose run() fails the way it is told, after handing `batches` batches. */
function failingRun (name: string, err: Error, opts: { batches?: Array<KeaEvent[]>, after?: Promise<void> } = {}): Source {
  return {
    name,
    counters: emptyCounters(),
    run: async (emit) => {
      for (const events of opts.batches ?? []) await emit({ source: name, events, ack: () => {} })
      await opts.after
      throw err
    },
    checkpoint: () => {}
  }
}

describe('sources that cannot start', () => {
  it('rejects with a coded error naming the source, and stops the sources that started', async () => {
    const ok = opening('good')
    const bad = opening('bad', new Error('listen EADDRINUSE: address already in use 127.0.0.1:514\n(details)'))
    const pipeline = new Pipeline(store(), { log: quiet })
    const err = await pipeline.run([ok, bad], new AbortController().signal).catch((e: unknown) => e) as { code: string, message: string }
    expect(err.code).toBe('KEATRAIL_ERR_SOURCE_START')
    expect(err.message).toBe('Source bad could not start: listen EADDRINUSE: address already in use 127.0.0.1:514 (details)')
    expect(ok.trace).toEqual({ started: 1, ran: 1, closed: 1 })
    expect(bad.trace.ran).toBe(0)
    expect(pipeline.sourceState('bad')).toBe('failed')
    expect(pipeline.sourceState('good')).toBe('stopped')
    expect(bad.counters?.errors).toBe(1)
  })

  it('treats a source without start() whose run() fails at once as failing to start', async () => {
    const pipeline = new Pipeline(store(), { log: quiet, startGraceMs: 60_000 })
    const ok = opening('good')
    const err = await pipeline.run([ok, failingRun('legacy', new Error('listen EADDRINUSE'))], new AbortController().signal).catch((e: unknown) => e) as { code: string, message: string }
    expect(err.code).toBe('KEATRAIL_ERR_SOURCE_START')
    expect(err.message).toBe('Source legacy could not start: listen EADDRINUSE')
    expect(ok.trace.closed).toBe(1)
    expect(pipeline.sourceState('legacy')).toBe('failed')
  })

  it('keeps running when a source fails after start-up, and reports it failed', async () => {
    const { events } = await parseBuffer(readFixture('kea-2.2.0-dhcp4-INFO-full.log'), { timeZone: 'UTC' })
    let failNow = (): void => {}
    const after = new Promise<void>((resolve) => { failNow = resolve })
    const late = failingRun('late', new Error('connection reset'), { batches: [events.slice(0, 10)], after })
    const ok = opening('good')
    const errors: Array<{ code: string, msg: string, fields?: Record<string, unknown> }> = []
    const pipeline = new Pipeline(store(), { log: { info: () => {}, error: (code, msg, fields) => errors.push({ code, msg, ...(fields === undefined ? {} : { fields }) }) }, startGraceMs: 60_000 })
    const stop = new AbortController()
    const running = pipeline.run([ok, late], stop.signal)
    expect(pipeline.sourceState('late')).toBe('starting')
    // Its first batch shows it up, before the grace ends.
    await vi.waitFor(() => { expect(pipeline.sourceState('late')).toBe('running') })
    expect(pipeline.sourceState('good')).toBe('running')
    failNow()
    await vi.waitFor(() => { expect(pipeline.sourceState('late')).toBe('failed') })
    expect(late.counters?.errors).toBe(1)
    expect(errors).toEqual([{ code: 'KEATRAIL_ERR_SOURCE', msg: 'Source stopped with an error.', fields: { source: 'late', error: expect.objectContaining({ message: 'connection reset' }) } }])
    expect(pipeline.sourceState('good')).toBe('running')
    stop.abort()
    await running
    expect(ok.trace.closed).toBe(1)
    expect(pipeline.counters.stored).toBe(10)
  })

  it('counts a source without start() as running once its grace has passed', async () => {
    const pipeline = new Pipeline(store(), { log: quiet, startGraceMs: 50 })
    const stop = new AbortController()
    const quietSource: Source = { name: 'q', run: async (_e, signal) => { await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })) }, checkpoint: () => {} }
    const running = pipeline.run([quietSource], stop.signal)
    expect(pipeline.sourceState('q')).toBe('starting')
    await vi.waitFor(() => { expect(pipeline.sourceState('q')).toBe('running') })
    stop.abort()
    await running
    expect(pipeline.sourceState('q')).toBe('stopped')
  })
})

describe('a signal during start-up', () => {
  it('stops a pipeline whose signal was aborted before it ran', async () => {
    const stop = new AbortController()
    stop.abort()
    const ok = opening('good')
    const pipeline = new Pipeline(store(), { log: quiet })
    // Before: the abort was never heard (an event that had already fired) and run() never returned.
    await expect(Promise.race([pipeline.run([ok], stop.signal).then(() => 'stopped'), new Promise((resolve) => setTimeout(resolve, 5000, 'hung'))])).resolves.toBe('stopped')
    expect(ok.trace).toEqual({ started: 1, ran: 1, closed: 1 })
  })

  it('stops while a source is still starting, closing it once started', async () => {
    let release = (): void => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    const slow = opening('slow')
    const start = slow.start
    slow.start = async () => { await gate; await start() }
    const pipeline = new Pipeline(store(), { log: quiet })
    const stop = new AbortController()
    const running = pipeline.run([slow], stop.signal)
    expect(pipeline.sourceState('slow')).toBe('starting')
    stop.abort()
    release()
    await running
    expect(slow.trace).toEqual({ started: 1, ran: 1, closed: 1 })
    expect(pipeline.sourceState('slow')).toBe('stopped')
  })
})

describe('start() of the file and journal sources', () => {
  const file = (dir: string): FileSource => new FileSource({ type: 'file', name: 'k', include: [join(dir, '*.log')], timeZone: 'UTC' }, join(dir, 'state'), quiet)

  it('fails a file source whose state directory cannot be made or written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-start-'))
    writeFileSync(join(dir, 'state'), 'not a directory')
    // Before: the constructor threw an uncoded EEXIST for the whole service.
    const source = file(dir)
    await expect(source.start()).rejects.toThrow(`state directory ${join(dir, 'state')} is not writable: EEXIST`)
    await expect(source.run(async () => {}, new AbortController().signal)).rejects.toThrow('is not writable')
  })

  it('fails a file source whose checkpoint cannot be read, and only re-reads one whose content is bad', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kt-start-'))
    mkdirSync(join(dir, 'state', 'file-k.json'), { recursive: true })
    await expect(file(dir).start()).rejects.toThrow(`checkpoint ${join(dir, 'state', 'file-k.json')} cannot be read: EISDIR`)

    const ok = mkdtempSync(join(tmpdir(), 'kt-start-'))
    mkdirSync(join(ok, 'state'))
    writeFileSync(join(ok, 'state', 'file-k.json'), '{torn')
    await expect(file(ok).start()).resolves.toBeUndefined()
  })

  it('fails a journal source without journalctl, or whose journal directory does not exist', async () => {
    const state = mkdtempSync(join(tmpdir(), 'kt-start-'))
    const missing = new JournalSource({ type: 'journal', name: 'j', journalctl: '/nonexistent/journalctl' }, state, quiet)
    await expect(missing.start()).rejects.toThrow('cannot run /nonexistent/journalctl: spawn /nonexistent/journalctl ENOENT')
    const fake = join(state, 'journalctl')
    writeFileSync(fake, '#!/bin/sh\necho "systemd 252"\n', { mode: 0o755 })
    const noDir = new JournalSource({ type: 'journal', name: 'j', journalctl: fake, directory: join(state, 'nope') }, state, quiet)
    await expect(noDir.start()).rejects.toThrow(`journal directory ${join(state, 'nope')}: ENOENT`)
    mkdirSync(join(state, 'journal'))
    const ok = new JournalSource({ type: 'journal', name: 'j', journalctl: fake, directory: join(state, 'journal') }, state, quiet)
    await expect(ok.start()).resolves.toBeUndefined()
  })
})

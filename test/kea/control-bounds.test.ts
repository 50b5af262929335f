import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import { createServer, type Server } from 'node:http'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { KeaCommandError, KeaControlClient, MAX_ANSWER_DEPTH } from '../../src/kea/control.js'

// The control client's cost bounds against a hostile Control Agent or control socket: answers
// nested deeper than any Kea answer, and answers dribbled out in many small pieces.

/** An answer with `depth` levels of nested arrays inside Dhcp4 (3 more for the list, object and arguments). */
const nested = (depth: number): string => `[{"result":0,"arguments":{"Dhcp4":${'['.repeat(depth)}${']'.repeat(depth)}}}]`

let http: Server
let base = ''
const bodies = new Map<string, string>()

beforeAll(async () => {
  http = createServer((req, res) => {
    req.resume()
    req.on('end', () => { res.end(bodies.get(req.url ?? '') ?? '[{"result":0}]') })
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
})
afterAll(async () => {
  http.closeAllConnections()
  await new Promise((resolve) => http.close(resolve))
})
afterEach(() => { vi.restoreAllMocks() })

async function failure (p: Promise<unknown>): Promise<KeaCommandError> {
  try { await p } catch (err) { return err as KeaCommandError }
  throw new Error('expected a failure')
}

/** A unix control socket whose connections `serve` answers. */
async function unixSocket (serve: (c: Socket) => void): Promise<{ path: string, server: NetServer }> {
  const path = join(mkdtempSync(join(tmpdir(), 'kt-sock-')), 'kea4.sock')
  const server = createNetServer((c) => {
    // The client hangs up on answers it refuses: writes after that fail, as they should.
    c.on('error', () => {})
    serve(c)
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  return { path, server }
}

/** Writes `text` in pieces of `size` bytes, one per event-loop turn, so the reader gets them apart. */
function dribble (c: Socket, text: string, size: number, end: boolean): void {
  let at = 0
  const next = (): void => {
    if (c.destroyed) return
    if (at >= text.length) { if (end) c.end(); return }
    const piece = text.slice(at, at + size)
    at += size
    c.write(piece, () => { setImmediate(next) })
  }
  next()
}

/** JSON.parse calls on texts longer than `min` characters (the answer, not vitest's own small messages). */
function parsesOfAnswers (min: number): () => number {
  const spy = vi.spyOn(JSON, 'parse')
  return () => spy.mock.calls.filter(([text]) => typeof text === 'string' && text.length > min).length
}

describe('answers nested deeper than any Kea answer', () => {
  it('over HTTP: a protocol error naming the bound, without parsing the answer', async () => {
    bodies.set('/deep', nested(200_000))
    const parses = parsesOfAnswers(1000)
    const e = await failure(new KeaControlClient({ name: 'k', url: `${base}/deep` }).command('config-get', 'dhcp4'))
    expect([e.code, e.kind]).toEqual(['KEATRAIL_ERR_KEA_CONTROL', 'protocol'])
    expect(e.message).toContain(`nested deeper than ${MAX_ANSWER_DEPTH} levels`)
    expect(parses()).toBe(0)
  })

  it('over a unix socket: the same protocol error', async () => {
    const { path, server } = await unixSocket((c) => { c.once('data', () => { c.end(nested(5000)) }) })
    try {
      const e = await failure(new KeaControlClient({ name: 'k', socket: path }).command('config-get', 'dhcp4'))
      expect(e.kind).toBe('protocol')
      expect(e.message).toContain(`nested deeper than ${MAX_ANSWER_DEPTH} levels`)
    } finally {
      server.close()
    }
  })

  it('an answer at the bound, and brackets and escaped quotes inside strings, are not nesting', async () => {
    bodies.set('/at-bound', nested(MAX_ANSWER_DEPTH - 3))
    const args = (await new KeaControlClient({ name: 'k', url: `${base}/at-bound` }).command('config-get', 'dhcp4')).arguments
    expect(JSON.stringify(args)).toBe(`{"Dhcp4":${'['.repeat(MAX_ANSWER_DEPTH - 3)}${']'.repeat(MAX_ANSWER_DEPTH - 3)}}`)
    const text = `\\"${'[{'.repeat(500)}`
    bodies.set('/strings', JSON.stringify([{ result: 1, text }]))
    expect(await new KeaControlClient({ name: 'k', url: `${base}/strings` }).command('status-get', 'dhcp4')).toEqual({ result: 1, text })
  })
})

describe('a unix-socket answer in many small pieces', () => {
  const leases = Array.from({ length: 2000 }, (_, i) => ({ 'ip-address': `10.0.${i >> 8}.${i & 255}`, 'hw-address': '02:00:00:00:00:01', 'valid-lft': 3600 }))
  const answer = JSON.stringify({ result: 0, text: 'x "{[" y', arguments: { leases } })

  it('is parsed once, not once per piece, when Kea keeps the connection open', async () => {
    expect(answer.length).toBeGreaterThan(100_000)
    const { path, server } = await unixSocket((c) => { c.once('data', () => { dribble(c, answer, 512, false) }) })
    try {
      const parses = parsesOfAnswers(1000)
      const got = await new KeaControlClient({ name: 'k', socket: path }).command('lease4-get-all', 'dhcp4')
      expect(got.arguments?.leases).toHaveLength(2000)
      expect(parses()).toBe(1)
    } finally {
      server.close()
    }
  })

  it('and when Kea closes the connection after it', async () => {
    const { path, server } = await unixSocket((c) => { c.once('data', () => { dribble(c, answer, 512, true) }) })
    try {
      const parses = parsesOfAnswers(1000)
      expect((await new KeaControlClient({ name: 'k', socket: path }).command('lease4-get-all', 'dhcp4')).arguments?.leases).toHaveLength(2000)
      expect(parses()).toBe(1)
    } finally {
      server.close()
    }
  })

  it('past maxResponseBytes: too-large, as before', async () => {
    const { path, server } = await unixSocket((c) => { c.once('data', () => { dribble(c, answer, 4096, false) }) })
    try {
      const e = await failure(new KeaControlClient({ name: 'k', socket: path, maxResponseBytes: 64 * 1024 }).command('lease4-get-all', 'dhcp4'))
      expect(e.kind).toBe('too-large')
    } finally {
      server.close()
    }
  })

  it('garbage after a complete answer is a protocol error, not an answer', async () => {
    const { path, server } = await unixSocket((c) => { c.once('data', () => { dribble(c, '{"result":0}{"result":1}', 5, true) }) })
    try {
      expect((await failure(new KeaControlClient({ name: 'k', socket: path }).command('status-get', 'dhcp4'))).kind).toBe('protocol')
    } finally {
      server.close()
    }
  })
})

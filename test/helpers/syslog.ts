import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { closeSync, openSync, statfsSync, writeSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { expect, vi } from 'vitest'
import type { KeaEvent } from '../../src/parse/event.js'
import type { Batch } from '../../src/pipeline/types.js'
import { SyslogSource, type SyslogSourceConfig } from '../../src/sources/syslog/source.js'

// Syslog source tests over real sockets, with a stand-in pipeline the test controls.

export type Line = [string, string, Record<string, unknown> | undefined]

/** A source run with a stand-in pipeline: batches are kept until the test acknowledges them. */
export function running (config: Omit<SyslogSourceConfig, 'type' | 'name'>, opts: { stateDir?: string, onLoss?: (from: number, to: number, n: number) => void, emit?: (b: Batch) => Promise<void> } = {}): {
  source: SyslogSource
  batches: Batch[]
  logs: Line[]
  events: () => KeaEvent[]
  stop: () => Promise<void>
} {
  const logs: Line[] = []
  const log = { info: (msg: string, f?: Record<string, unknown>) => logs.push(['info', msg, f]), error: (code: string, msg: string, f?: Record<string, unknown>) => logs.push([code, msg, f]) }
  const source = new SyslogSource({ type: 'syslog', name: 'kea', timeZone: 'UTC', flushMs: 20, ...config }, opts.stateDir, opts.onLoss, log)
  const batches: Batch[] = []
  const abort = new AbortController()
  const run = source.run(opts.emit ?? (async (b) => { batches.push(b) }), abort.signal)
  return {
    source,
    batches,
    logs,
    events: () => batches.flatMap((b) => b.events),
    stop: async () => { abort.abort(); await run }
  }
}

export async function bound (source: SyslogSource, kind: 'udp' | 'tcp' | 'tls'): Promise<number> {
  await vi.waitFor(() => expect(source.bound[kind]).toBeDefined())
  return source.bound[kind] as number
}

export async function connected (port: number, localAddress?: string): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) })
  s.on('error', () => {})
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('close', () => reject(new Error('closed before connecting'))) })
  return s
}

export const closed = async (s: Socket): Promise<void> => { if (!s.destroyed) await new Promise<void>((resolve) => s.once('close', () => resolve())) }

export async function freeUdpPort (): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const port = s.address().port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

export async function bindUdp (port: number, reuseAddr: boolean): Promise<UdpSocket> {
  const s = createSocket({ type: 'udp4', reuseAddr })
  await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(port, '127.0.0.1', () => resolve()) })
  return s
}

export async function send (port: number, msg: Buffer | string): Promise<void> {
  const c = createSocket('udp4')
  await new Promise<void>((resolve, reject) => c.send(msg, port, '127.0.0.1', (err) => { if (err === null) resolve(); else reject(err) }))
  c.close()
}

/** Fills a file system to the last byte with a ballast file. */
export function fill (mount: string): string {
  const path = join(mount, `ballast-${Date.now()}`)
  const block = Buffer.alloc(64 * 1024, 1)
  const fd = openSync(path, 'w')
  try {
    for (let left = statfsSync(mount).bavail * statfsSync(mount).bsize + block.length; left > 0;) {
      try { left -= writeSync(fd, block, 0, Math.min(block.length, left)) } catch { break } // ENOSPC: full
    }
  } finally { closeSync(fd) }
  return path
}

/** Whether this process may mount a tmpfs (the full-disk tests need one). */
export const canMount = process.getuid?.() === 0

import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { connect } from 'node:net'
import { z } from 'zod'
import { KeaControlError } from '../errors.js'
import { validateConfig } from '../config/validate.js'

export const KEA_SERVICES = ['dhcp4', 'dhcp6'] as const
export type KeaService = typeof KEA_SERVICES[number]

export const keaServerConfigSchema = z.object({
  name: z.string().min(1).describe('Name of this Kea server in snapshots and alerts (use its host.name so logs and snapshots line up)'),
  url: z.string().url().optional().describe('HTTP(S) URL of kea-ctrl-agent (Kea ≤ 3.0) or of a Kea 3.x daemon\'s own HTTP control socket'),
  socket: z.string().optional().describe('Path of a local daemon\'s unix control socket (instead of url)'),
  direct: z.boolean().default(false).describe('url is a Kea 3.x daemon serving HTTP itself: commands carry no "service"'),
  services: z.array(z.enum(KEA_SERVICES)).min(1).default(['dhcp4']).describe('Daemons to poll behind the Control Agent (one with socket or direct)'),
  username: z.string().optional().describe('Basic-auth user (Kea\'s "authentication" clients)'),
  password: z.string().optional().describe('Basic-auth password; prefer the KEATRAIL_KEA_PASSWORD environment variable'),
  tls: z.object({
    caFile: z.string().optional().describe('PEM file of the CA that signed the Control Agent\'s certificate'),
    certFile: z.string().optional().describe('Client certificate (PEM) when Kea requires one ("cert-required")'),
    keyFile: z.string().optional().describe('Key of the client certificate (PEM)')
  }).strict().optional().describe('TLS settings for an https URL'),
  timeoutMs: z.number().int().positive().default(5000).describe('Whole-command deadline: connect, send, receive'),
  maxResponseBytes: z.number().int().positive().default(8 * 1024 * 1024).describe('Larger answers are refused (memory stays bounded)'),
  intervalMs: z.number().int().min(1000).default(30_000).describe('How often to take a snapshot'),
  leasesIntervalMs: z.number().int().min(10_000).optional().describe('Also fetch lease4-get-all / lease6-get-all this often, to seed lease history (off when absent)')
}).strict().refine((s) => (s.url === undefined) !== (s.socket === undefined), { message: 'give exactly one of url and socket' })

export type KeaServerConfig = z.output<typeof keaServerConfigSchema>

/** Kea's answer to one command for one service. result: 0 success, 1 error, 2 unsupported, 3 empty, 4 conflict. */
export interface KeaAnswer {
  result: number
  text?: string
  arguments?: Record<string, unknown>
}

/** Why a command failed, as snapshots record it. */
export type ControlFailure = 'unreachable' | 'timeout' | 'auth' | 'http' | 'protocol' | 'too-large'

/**
 * Deepest nesting of objects and arrays an answer may have. Kea's deepest answers (config-get:
 * the Control Agent's list, arguments, Dhcp6, shared-networks, subnet6, pools, option-data,
 * user-context) are some 15 levels; an answer of megabytes of brackets costs JSON.parse a
 * second and overflows the stack of anything that walks it recursively, so it is refused
 * before it is parsed.
 */
export const MAX_ANSWER_DEPTH = 64

const TOO_DEEP = `the answer is nested deeper than ${MAX_ANSWER_DEPTH} levels (no Kea answer is)`

/**
 * Follows a JSON text's nesting as its bytes arrive, each byte once: how deep it goes, and
 * whether its top-level object or array has closed (the answer can be complete). The bytes of
 * multi-byte UTF-8 characters are all ≥ 0x80, so none is taken for a bracket, quote or backslash.
 */
class NestingScanner {
  tooDeep = false
  /** The top-level object or array has closed. */
  closed = false
  private depth = 0
  private inString = false
  private escaped = false

  feed (c: Buffer): void {
    let { depth, inString, escaped } = this
    for (let i = 0; i < c.length; i++) {
      const b = c[i] as number
      if (inString) {
        if (escaped) escaped = false
        else if (b === 0x5c) escaped = true
        else if (b === 0x22) inString = false
      } else if (b === 0x22) {
        inString = true
      } else if (b === 0x7b || b === 0x5b) {
        if (++depth > MAX_ANSWER_DEPTH) { this.tooDeep = true; return }
      } else if (b === 0x7d || b === 0x5d) {
        // A close before any open leaves depth below 0: never "closed", JSON.parse says why.
        if (--depth === 0) { this.closed = true; return }
      }
    }
    this.depth = depth
    this.inString = inString
    this.escaped = escaped
  }
}

export class KeaCommandError extends Error {
  readonly code = 'KEATRAIL_ERR_KEA_CONTROL'
  constructor (readonly kind: ControlFailure, server: string, command: string, reason: string) {
    super(new KeaControlError(server, command, reason).message)
  }
}

/**
 * Talks to Kea's control channel: the Control Agent ({"command", "service": [...]}), a Kea 3.x
 * daemon's own HTTP socket (no service), or a local unix control socket. Every failure becomes
 * a KeaCommandError with a kind; a server that answers HTML, garbage, too much or nothing at
 * all costs at most maxResponseBytes and timeoutMs.
 */
export class KeaControlClient {
  readonly cfg: KeaServerConfig
  private readonly tls: { ca?: Buffer, cert?: Buffer, key?: Buffer }

  constructor (config: z.input<typeof keaServerConfigSchema>) {
    this.cfg = validateConfig(keaServerConfigSchema, config, `kea.servers.${config.name ?? '?'}`)
    const t = this.cfg.tls
    this.tls = {
      ...(t?.caFile === undefined ? {} : { ca: readFileSync(t.caFile) }),
      ...(t?.certFile === undefined ? {} : { cert: readFileSync(t.certFile) }),
      ...(t?.keyFile === undefined ? {} : { key: readFileSync(t.keyFile) })
    }
  }

  /** Sends one command; resolves to Kea's answer for `service` (transport failures throw). */
  async command (command: string, service: KeaService, args?: Record<string, unknown>): Promise<KeaAnswer> {
    const body: Record<string, unknown> = { command }
    if (this.cfg.url !== undefined && !this.cfg.direct) body.service = [service]
    if (args !== undefined) body.arguments = args
    const text = this.cfg.socket !== undefined ? await this.viaSocket(command, JSON.stringify(body)) : await this.viaHttp(command, JSON.stringify(body))
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      const head = text.slice(0, 80).replace(/\s+/g, ' ')
      throw new KeaCommandError('protocol', this.cfg.name, command, `the answer is not JSON (starts with ${JSON.stringify(head)})`)
    }
    // The Control Agent answers a list (one per service); daemons answer one object.
    const answer = Array.isArray(parsed) ? parsed[0] : parsed
    if (typeof answer !== 'object' || answer === null || typeof (answer as { result?: unknown }).result !== 'number') {
      throw new KeaCommandError('protocol', this.cfg.name, command, 'the answer has no numeric "result"')
    }
    return answer as KeaAnswer
  }

  private async viaHttp (command: string, payload: string): Promise<string> {
    const url = new URL(this.cfg.url as string)
    const lib = url.protocol === 'https:' ? https : http
    const user = this.cfg.username
    const password = this.cfg.password ?? process.env.KEATRAIL_KEA_PASSWORD
    return await new Promise<string>((resolve, reject) => {
      const fail = (kind: ControlFailure, reason: string): void => { reject(new KeaCommandError(kind, this.cfg.name, command, reason)) }
      const req = lib.request(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...(user === undefined ? {} : { authorization: `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}` })
        },
        ...this.tls,
        agent: false
      }, (res) => {
        const chunks: Buffer[] = []
        let size = 0
        // Only an answer (HTTP 200) is parsed; an error page is quoted, not walked.
        const nesting = res.statusCode === 200 ? new NestingScanner() : undefined
        res.on('data', (c: Buffer) => {
          size += c.length
          if (size > this.cfg.maxResponseBytes) {
            req.destroy()
            fail('too-large', `the answer is larger than maxResponseBytes (${this.cfg.maxResponseBytes} bytes)`)
            return
          }
          // Past the top-level value only more of nothing may follow (JSON.parse stops at it).
          if (nesting !== undefined && !nesting.closed) {
            nesting.feed(c)
            if (nesting.tooDeep) { req.destroy(); fail('protocol', TOO_DEEP); return }
          }
          chunks.push(c)
        })
        res.on('end', () => {
          const status = res.statusCode ?? 0
          const text = Buffer.concat(chunks).toString('utf8')
          if (status === 401 || status === 403) fail('auth', `HTTP ${status}: wrong or missing credentials`)
          else if (status !== 200) fail('http', `HTTP ${status}: ${text.slice(0, 120).replace(/\s+/g, ' ')}`)
          else resolve(text)
        })
        res.on('error', (err) => { fail('unreachable', err.message) })
      })
      const deadline = setTimeout(() => { req.destroy(); fail('timeout', `no complete answer within ${this.cfg.timeoutMs} ms`) }, this.cfg.timeoutMs)
      req.on('close', () => { clearTimeout(deadline) })
      req.on('error', (err: NodeJS.ErrnoException) => {
        const kind: ControlFailure = /certificate|self.signed|SSL|TLS/i.test(err.message) ? 'auth' : 'unreachable'
        fail(kind, err.code === undefined ? err.message : `${err.code}: ${err.message}`)
      })
      req.end(payload)
    })
  }

  /**
   * Kea's unix control socket: raw JSON in, raw JSON out, then Kea closes the connection. The
   * answer is taken when its top-level object closes or when Kea closes the connection,
   * whichever comes first: each byte is looked at once and the answer joined and parsed once
   * (joining and parsing all of it on every chunk cost ~1 s of CPU for an 8 MB answer).
   */
  private async viaSocket (command: string, payload: string): Promise<string> {
    return await new Promise<string>((resolve, reject) => {
      let done = false
      const fail = (kind: ControlFailure, reason: string): void => { done = true; clearTimeout(deadline); sock.destroy(); reject(new KeaCommandError(kind, this.cfg.name, command, reason)) }
      const finish = (): void => { done = true; clearTimeout(deadline); resolve(Buffer.concat(chunks, size).toString('utf8')) }
      const chunks: Buffer[] = []
      let size = 0
      const nesting = new NestingScanner()
      const sock = connect(this.cfg.socket as string)
      const deadline = setTimeout(() => { fail('timeout', `no complete answer within ${this.cfg.timeoutMs} ms`) }, this.cfg.timeoutMs)
      sock.on('connect', () => { sock.write(payload) })
      sock.on('data', (c: Buffer) => {
        if (done) return
        if (size + c.length > this.cfg.maxResponseBytes) { fail('too-large', `the answer is larger than maxResponseBytes (${this.cfg.maxResponseBytes} bytes)`); return }
        size += c.length
        chunks.push(c)
        nesting.feed(c)
        if (nesting.tooDeep) { fail('protocol', TOO_DEEP); return }
        // Kea may keep the connection open until it has sent a whole JSON document.
        if (nesting.closed) { finish(); sock.end() }
      })
      sock.on('error', (err: NodeJS.ErrnoException) => { if (!done) fail('unreachable', `${err.code ?? ''} ${err.message}`.trim()) })
      sock.on('end', () => { if (!done) finish() })
    })
  }
}

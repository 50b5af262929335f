import { connect, createServer, type Server, type Socket } from 'node:net'

/** A TCP proxy to Elasticsearch that can be cut (connections destroyed) and restored. */
export class Outage {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  constructor (readonly port: number, private readonly target: URL) {}
  async up (): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(Number(this.target.port), this.target.hostname)
      for (const s of [client, upstream]) { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); s.on('error', () => {}) }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => this.server?.listen(this.port, '127.0.0.1', resolve))
  }

  async down (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => { if (this.server === undefined) resolve(); else this.server.close(() => resolve()) })
    this.server = undefined
  }
}

export async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

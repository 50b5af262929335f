import { duidLinkLayer, parseAddressOrPrefix } from '../src/leases/address.js'

// bench/address: the address and DUID parsing every lease event (observe) and every row a CIDR
// query looks at (SQLite's keatrail_ip_hex) goes through. Prints µs per call, best of 5 rounds.
// Usage: npm run bench:address

const v4 = Array.from({ length: 1000 }, (_, i) => `192.0.${(i >> 8) & 255}.${i & 255}`)
const v6 = Array.from({ length: 1000 }, (_, i) => `2001:db8:1::${(i + 1).toString(16)}`)
const prefixes = Array.from({ length: 1000 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::/56`)
const duids = Array.from({ length: 1000 }, (_, i) => `00:01:00:01:2c:5f:3a:1b:02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`)

const cases: Array<[string, string[], (s: string) => unknown]> = [
  ['IPv4 address', v4, parseAddressOrPrefix],
  ['IPv6 address', v6, parseAddressOrPrefix],
  ['IPv6 prefix', prefixes, parseAddressOrPrefix],
  ['link-layer address in a DUID-LLT', duids, duidLinkLayer]
]
let sink = 0
for (const [name, inputs, f] of cases) {
  let best = Number.POSITIVE_INFINITY
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now()
    for (let k = 0; k < 200; k++) for (const s of inputs) if (f(s) !== undefined) sink++
    best = Math.min(best, (performance.now() - t0) * 1000 / (200 * inputs.length))
  }
  process.stdout.write(`${name.padEnd(36)} ${best.toFixed(3).padStart(7)} µs per call\n`)
}
if (sink === 0) process.stdout.write('(nothing parsed)\n')

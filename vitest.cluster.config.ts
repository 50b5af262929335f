import { defineConfig } from 'vitest/config'

// `npm run test:cluster`: the suites that start a 3-node Elasticsearch cluster of their own
// (test/cluster), too heavy for CI's two cores beside the rest; figures in docs/RELIABILITY.md.
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    testTimeout: 30_000,
    pool: 'forks',
    globalSetup: ['./test/helpers/tmp-setup.ts']
  }
})

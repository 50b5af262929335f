import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A 3-node cluster of its own: npm run test:cluster (vitest.cluster.config.ts).
    exclude: ['test/cluster/**', '**/node_modules/**'],
    testTimeout: 30_000,
    pool: 'forks',
    globalSetup: ['./test/helpers/es-setup.ts', './test/helpers/tmp-setup.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts']
  }
})

# keatrail: build stage compiles TypeScript, better-sqlite3 and zstd-napi (from source), the runtime stage
# carries only what runs. Non-root; data in /var/lib/keatrail; config at /etc/keatrail/keatrail.yaml.
FROM node:20.19-bookworm-slim AS build
WORKDIR /src
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY scripts ./scripts
RUN npm run build && npm prune --omit=dev

FROM node:20.19-bookworm-slim
ENV NODE_ENV=production
# Bounded heap: see deploy/keatrail.service.
ENV NODE_OPTIONS=--max-old-space-size=256
WORKDIR /opt/keatrail
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY parsers ./parsers
COPY mappings ./mappings
COPY dashboards ./dashboards
COPY ui ./ui
RUN ln -s /opt/keatrail/bin/keatrail.js /usr/local/bin/keatrail \
 && mkdir -p /var/lib/keatrail /etc/keatrail \
 && chown node:node /var/lib/keatrail
USER node
VOLUME ["/var/lib/keatrail"]
# Syslog from Kea (via rsyslog/syslog-ng or Kea itself): RFC 3164/5424 over UDP and TCP.
EXPOSE 5514/udp 5514/tcp 8080/tcp
# Ready, not merely alive: the store answers and every source runs (the API on its default port).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s CMD ["node", "-e", "fetch('http://127.0.0.1:8080/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["keatrail"]
CMD ["run", "--config", "/etc/keatrail/keatrail.yaml"]

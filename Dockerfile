# syntax=docker/dockerfile:1
# The gemma3 server as a container: the native addon compiled in the build stage for the target
# platform (docker buildx build --platform linux/amd64,linux/arm64 builds each; the kernels pick
# AVX-512 / AVX2 / generic code at run time, so an amd64 image runs on any x86-64 CPU), only the
# runtime dependencies in the final image, run as the unprivileged `node` user.
#
#   docker build -t gemma3 .
#   docker run --rm -p 8080:8080 -v ~/models:/models:ro \
#     -e GEMMA3_MODEL=/models/gemma-3-4b-it-q4_0.gguf -e GEMMA3_API_KEY=change-me gemma3
#   docker run --rm -p 8080:8080 gemma3 serve --demo --host 0.0.0.0       (the tiny random model)
#
# The model is mounted (a .gguf file or a Hugging Face checkpoint folder) and named by
# GEMMA3_MODEL, or found in a Hugging Face cache mounted at /home/node/.cache/huggingface.
# docker stop sends SIGTERM: the server drains (--drain-timeout, default 30 s) and exits 0.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first (a layer reused while only the sources change). --ignore-scripts: the
# development tools' own install steps (node-llama-cpp's llama.cpp download) are not needed here.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# The addon (node-gyp against this image's Node headers: no download), the TypeScript build and
# the demo model; the build fails if the addon did not compile instead of shipping without it.
RUN npm run build:native \
 && test -f build/Release/gemma3_native.node \
 && npm run build \
 && npm run build:demo \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json /src/LICENSE /src/README.md ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/demo ./dist/demo
COPY --from=build /src/build/Release/gemma3_native.node ./build/Release/gemma3_native.node
COPY --from=build /src/src/server/web ./src/server/web
USER node
EXPOSE 8080
# Liveness; orchestrators should also use /ready (503 while draining) to route traffic.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]

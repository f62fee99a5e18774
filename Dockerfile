# gpt2-wasm serve: an OpenAI-compatible completions server (CPU, WebAssembly SIMD kernels, no native code).
#   docker build -t gpt2-wasm .
#   docker run --rm -p 8080:8080 -v gpt2-hf:/data gpt2-wasm                       # openai-community/gpt2
#   docker run --rm -p 8080:8080 -v gpt2-hf:/data gpt2-wasm --model openai-community/gpt2 --dtype q8
#   docker run --rm -p 8080:8080 -e GPT2WASM_API_KEY=secret gpt2-wasm --model openai-community/gpt2 --drain-delay-ms 5000
# (arguments after the image name are `gpt2-wasm serve` options; GPT2WASM_API_KEY requires a bearer key.)
# Build with --build-arg PREFETCH_MODEL=openai-community/gpt2 to bake that checkpoint into the image.
# See docs/server.md (options, limits, memory per model and dtype, scaling).

# ---- build: kernels (AssemblyScript -> wasm), bundle (esbuild) -------------------------------------------
FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# dev dependencies are build tools only; install scripts run after the sources are in place
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY asconfig.json tsconfig.json tsconfig.build.json ./
COPY build ./build
COPY assembly ./assembly
COPY src ./src
RUN node build/build.mjs --no-types

# ---- runtime: the bundle has no dependencies besides Node itself -------------------------------------------
FROM node:20-slim
ENV NODE_ENV=production \
    HF_HOME=/data/hf
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/dist ./dist
RUN mkdir -p /data/hf && chown -R node:node /data
USER node
ARG PREFETCH_MODEL=
RUN if [ -n "$PREFETCH_MODEL" ]; then node dist/cli.js generate hi -n 1 --greedy --threads 1 --model "$PREFETCH_MODEL" > /dev/null; fi
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8080/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# SIGTERM (docker stop, Kubernetes) drains: /health fails for --drain-delay-ms while requests are still served,
# then no new connections, requests in flight finish, exit 0. Give it a stop timeout above --drain-delay-ms +
# --shutdown-timeout-ms (docker stop -t 40; terminationGracePeriodSeconds; see docs/server.md, Kubernetes).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli.js", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--model", "openai-community/gpt2"]

import { defineConfig } from "vite";

// The app is served by tokenrelayd at "/" (see services/embedded/webui); in
// development, `npm run dev -w web` proxies the API to a running tokenrelayd.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
  },
  server: {
    proxy: {
      "^/tokenrelay\\.": { target: process.env.TOKENRELAY_URL ?? "http://127.0.0.1:8080", changeOrigin: true },
    },
  },
});

// The Node globals the bundled libraries read (Buffer; process.nextTick and process.env in the
// stream polyfill), injected by esbuild wherever the bundle mentions them.
export { Buffer } from "buffer/";

export const process = {
  env: {},
  browser: true,
  version: "",
  nextTick: (callback, ...args) => queueMicrotask(() => callback(...args)),
};

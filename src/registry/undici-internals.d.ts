// Types for the three files of undici that dispatcher.ts imports instead of undici's index (which loads
// fetch, WebSocket, the caches and the mocks). undici ships types for its index only.
declare module 'undici/lib/dispatcher/env-http-proxy-agent.js' {
  import type { EnvHttpProxyAgent } from 'undici';
  const EnvHttpProxyAgentClass: typeof EnvHttpProxyAgent;
  export default EnvHttpProxyAgentClass;
}

declare module 'undici/lib/dispatcher/dispatcher.js' {
  const DispatcherBase: { prototype: object };
  export default DispatcherBase;
}

declare module 'undici/lib/api/index.js' {
  const api: Record<string, unknown>;
  export default api;
}

declare module 'undici/lib/core/connect.js' {
  import type { buildConnector as build } from 'undici';
  const buildConnector: typeof build;
  export default buildConnector;
}

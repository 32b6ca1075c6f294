export { serve, spawnChild, type ChildHandle, type Methods } from './rpc.ts';

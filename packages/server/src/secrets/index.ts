export {
  createMasterKey,
  keyCheckValue,
  loadMasterKey,
  matchesKeyCheckValue,
  MASTER_KEY_FILE,
  readMasterKey,
  type MasterKey,
} from './master-key.ts';
export { createSecretBox, type SecretBox } from './secret-box.ts';

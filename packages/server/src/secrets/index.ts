export { loadMasterKey, MASTER_KEY_FILE } from './master-key.ts';
export { createSecretBox, type SecretBox } from './secret-box.ts';

export {
  banKinds,
  banRules,
  createFirewall,
  defaultLimits,
  type AutomaticBan,
  type Ban,
  type BanKind,
  type BanRule,
  type Firewall,
  type FirewallLimits,
  type PublishVerdict,
} from './firewall.ts';
export {
  createFirewallService,
  type BanView,
  type FirewallComplianceFacts,
  type FirewallService,
} from './firewall.service.ts';
export { firewallRoutes } from './firewall.routes.ts';
export { TokenBucket } from './token-bucket.ts';

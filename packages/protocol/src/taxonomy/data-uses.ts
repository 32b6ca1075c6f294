/**
 * The fideslang default taxonomy: data uses.
 *
 * Source: fideslang default taxonomy (ethyca/fideslang, data_files/data_uses.json at 40394c4), CC BY 4.0; keys, names and parents only.
 * Copied from fideslang-data_uses.json beside this file (a test keeps the two equal); see README.md.
 */
export const dataUsesSource =
  'fideslang default taxonomy (ethyca/fideslang, data_files/data_uses.json at 40394c4), CC BY 4.0; keys, names and parents only';

export const dataUseItems = [
  { key: 'analytics', name: 'Analytics', parent: null },
  { key: 'analytics.reporting', name: 'Analytics for Reporting', parent: 'analytics' },
  {
    key: 'analytics.reporting.ad_performance',
    name: 'Analytics for Advertising Performance',
    parent: 'analytics.reporting',
  },
  {
    key: 'analytics.reporting.content_performance',
    name: 'Analytics for Content Performance',
    parent: 'analytics.reporting',
  },
  {
    key: 'analytics.reporting.campaign_insights',
    name: 'Analytics for Insights',
    parent: 'analytics.reporting',
  },
  { key: 'analytics.reporting.system', name: 'Analytics for System Activity', parent: 'analytics.reporting' },
  {
    key: 'analytics.reporting.system.performance',
    name: 'Analytics for System Performance',
    parent: 'analytics.reporting.system',
  },
  { key: 'collect', name: 'Collect', parent: null },
  { key: 'employment', name: 'Employment', parent: null },
  { key: 'employment.recruitment', name: 'Employment Recruitment', parent: 'employment' },
  { key: 'essential', name: 'Essential', parent: null },
  { key: 'essential.fraud_detection', name: 'Essential Fraud Detection', parent: 'essential' },
  { key: 'essential.legal_obligation', name: 'Essential Legal Obligation', parent: 'essential' },
  { key: 'essential.service', name: 'Essential for Service', parent: 'essential' },
  {
    key: 'essential.service.authentication',
    name: 'Essential Service Authentication',
    parent: 'essential.service',
  },
  {
    key: 'essential.service.notifications',
    name: 'Essential Service Notifications',
    parent: 'essential.service',
  },
  { key: 'essential.service.operations', name: 'Essential for Operations', parent: 'essential.service' },
  {
    key: 'essential.service.payment_processing',
    name: 'Essential for Payment Processing',
    parent: 'essential.service',
  },
  { key: 'essential.service.security', name: 'Essential for Security', parent: 'essential.service' },
  { key: 'essential.service.upgrades', name: 'Essential for Service Upgrades', parent: 'essential.service' },
  {
    key: 'essential.service.notifications.email',
    name: 'Essential Email Service Notifications',
    parent: 'essential.service.notifications',
  },
  {
    key: 'essential.service.notifications.sms',
    name: 'Essential SMS Service Notifications',
    parent: 'essential.service.notifications',
  },
  {
    key: 'essential.service.operations.support',
    name: 'Essential for Operations Support',
    parent: 'essential.service.operations',
  },
  {
    key: 'essential.service.operations.improve',
    name: 'Essential for Support Improvement',
    parent: 'essential.service.operations',
  },
  { key: 'finance', name: 'Finance', parent: null },
  { key: 'functional', name: 'Functional', parent: null },
  { key: 'functional.storage', name: 'Local Data Storage', parent: 'functional' },
  { key: 'functional.service', name: 'Service', parent: 'functional' },
  { key: 'functional.service.improve', name: 'Improve Service', parent: 'functional.service' },
  { key: 'marketing', name: 'Marketing', parent: null },
  { key: 'marketing.advertising', name: 'Advertising, Marketing or Promotion', parent: 'marketing' },
  { key: 'marketing.communications', name: 'Marketing Communications', parent: 'marketing' },
  {
    key: 'marketing.advertising.first_party',
    name: 'First Party Advertising',
    parent: 'marketing.advertising',
  },
  {
    key: 'marketing.advertising.frequency_capping',
    name: 'Frequency Capping',
    parent: 'marketing.advertising',
  },
  {
    key: 'marketing.advertising.negative_targeting',
    name: 'Negative Targeting',
    parent: 'marketing.advertising',
  },
  {
    key: 'marketing.advertising.profiling',
    name: 'Profiling for Advertising',
    parent: 'marketing.advertising',
  },
  {
    key: 'marketing.advertising.serving',
    name: 'Essential for Serving Ads',
    parent: 'marketing.advertising',
  },
  {
    key: 'marketing.advertising.third_party',
    name: 'Third Party Advertising',
    parent: 'marketing.advertising',
  },
  {
    key: 'marketing.advertising.first_party.contextual',
    name: 'First Party Contextual Advertising',
    parent: 'marketing.advertising.first_party',
  },
  {
    key: 'marketing.advertising.first_party.targeted',
    name: 'First Party Personalized Advertising',
    parent: 'marketing.advertising.first_party',
  },
  {
    key: 'marketing.advertising.third_party.targeted',
    name: 'Third Party Targeted Advertising',
    parent: 'marketing.advertising.third_party',
  },
  {
    key: 'marketing.communications.email',
    name: 'Marketing Email Communications',
    parent: 'marketing.communications',
  },
  {
    key: 'marketing.communications.sms',
    name: 'Marketing SMS Communications',
    parent: 'marketing.communications',
  },
  { key: 'operations', name: 'Operations', parent: null },
  { key: 'personalize', name: 'Personalize', parent: null },
  { key: 'personalize.content', name: 'Content Personalization', parent: 'personalize' },
  { key: 'personalize.system', name: 'System Personalization', parent: 'personalize' },
  {
    key: 'personalize.content.limited',
    name: 'Limited Content Personalization',
    parent: 'personalize.content',
  },
  {
    key: 'personalize.content.profiling',
    name: 'Profiling for Personalization',
    parent: 'personalize.content',
  },
  {
    key: 'personalize.content.profiled',
    name: 'Targeted Content Personalization',
    parent: 'personalize.content',
  },
  { key: 'sales', name: 'Sales', parent: null },
  { key: 'third_party_sharing', name: 'Third Party Sharing', parent: null },
  {
    key: 'third_party_sharing.legal_obligation',
    name: 'Sharing for Legal Obligation',
    parent: 'third_party_sharing',
  },
  { key: 'train_ai_system', name: 'Train AI System', parent: null },
] as const satisfies readonly { key: string; name: string; parent: string | null }[];

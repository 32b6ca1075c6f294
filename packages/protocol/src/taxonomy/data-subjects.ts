/**
 * The fideslang default taxonomy: data subjects.
 *
 * Source: fideslang default taxonomy (ethyca/fideslang, data_files/data_subjects.json at 40394c4), CC BY 4.0; keys, names and parents only.
 * Copied from fideslang-data_subjects.json beside this file (a test keeps the two equal); see README.md.
 */
export const dataSubjectsSource =
  'fideslang default taxonomy (ethyca/fideslang, data_files/data_subjects.json at 40394c4), CC BY 4.0; keys, names and parents only';

export const dataSubjectItems = [
  { key: 'anonymous_user', name: 'Anonymous User', parent: null },
  { key: 'citizen_voter', name: 'Citizen Voter', parent: null },
  { key: 'commuter', name: 'Commuter', parent: null },
  { key: 'consultant', name: 'Consultant', parent: null },
  { key: 'customer', name: 'Customer', parent: null },
  { key: 'employee', name: 'Employee', parent: null },
  { key: 'job_applicant', name: 'Job Applicant', parent: null },
  { key: 'next_of_kin', name: 'Next of Kin', parent: null },
  { key: 'passenger', name: 'Passenger', parent: null },
  { key: 'patient', name: 'Patient', parent: null },
  { key: 'prospect', name: 'Prospect', parent: null },
  { key: 'shareholder', name: 'Shareholder', parent: null },
  { key: 'supplier_vendor', name: 'Supplier/Vendor', parent: null },
  { key: 'trainee', name: 'Trainee', parent: null },
  { key: 'visitor', name: 'Visitor', parent: null },
] as const satisfies readonly { key: string; name: string; parent: string | null }[];

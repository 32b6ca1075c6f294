/** Test fixture: data schema documents (the room sensor) for the privacy and broker tests. */

/** The example (room sensor): a subject id, a precise location, a temperature. */
export const roomSensor = () => ({
  name: 'room-sensor',
  topic: 'devices/+/telemetry',
  subject: { field: 'user_id' },
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['user_id', 'temp'],
    properties: {
      user_id: { type: 'string' },
      lat: { type: 'number', minimum: -90, maximum: 90 },
      lon: { type: 'number', minimum: -180, maximum: 180 },
      temp: { type: 'number' },
    },
  },
  fields: {
    user_id: {
      category: 'user.unique_id',
      uses: ['essential.service.operations'],
      transform: 'pseudonymise',
      lawfulBasis: 'contract',
      retention: '30d',
    },
    lat: {
      category: 'user.location.precise',
      uses: ['essential.service.operations'],
      lawfulBasis: 'contract',
      retention: '30d',
      transform: { generalise: { grid: 1000, axis: 'latitude' } },
    },
    lon: {
      category: 'user.location.precise',
      uses: ['essential.service.operations'],
      lawfulBasis: 'contract',
      retention: '30d',
      transform: { generalise: { grid: 1000, axis: 'longitude', latitudeField: 'lat' } },
    },
    temp: { category: 'system.operations', lawfulBasis: 'legitimate_interests' },
  } as Record<string, Record<string, unknown>>,
});

/** The room sensor with a heart rate: special category (Art. 9), consent, encrypted for everyone else. */
export const roomSensorWithHeartRate = (retention = '30d') => {
  const doc = roomSensor();
  return {
    ...doc,
    schema: {
      ...doc.schema,
      properties: { ...doc.schema.properties, hr: { type: 'integer', minimum: 20, maximum: 250 } },
    },
    fields: {
      ...doc.fields,
      hr: {
        category: 'user.biometric.health',
        specialCondition: 'explicit_consent',
        uses: ['essential.service.operations'],
        transform: 'encrypt',
        lawfulBasis: 'consent',
        retention,
      },
    } as Record<string, Record<string, unknown>>,
  };
};

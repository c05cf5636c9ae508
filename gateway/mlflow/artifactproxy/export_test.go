package artifactproxy

// Test hooks: the refusal tests forge part URLs and look inside upload ids.

// MPUPartSig signs a part URL as mpu/create does.
var MPUPartSig = mpuPartSig

// OpenMPUToken decodes an upload id into the blob key and backend upload id it carries.
func OpenMPUToken(s string) (key, upload string, err error) {
	t, err := openMPUToken(s)
	return t.Key, t.Upload, err
}

package reaper

// SetImage makes b the image that Image and Memfd give, for tests that run
// pause's behaviour tests against a fresh build of pause.c.
func SetImage(b []byte) { image = b }

package hf

// SetTreePageSize makes tree listings page every n entries until the returned function is called, so
// that paging is tested without thousands of files.
func SetTreePageSize(n int) (restore func()) {
	old := treePageSize
	treePageSize = n
	return func() { treePageSize = old }
}

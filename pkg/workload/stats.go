package workload

import (
	"math"
	"slices"
)

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted s; 0 for an empty s.
func Percentile(s []int64, p int) int64 {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[min(i, len(s))-1]
}

// CV returns the coefficient of variation of vals (population standard
// deviation over mean); 0 for fewer than two values or a zero mean.
func CV(vals []float64) float64 {
	if len(vals) < 2 {
		return 0
	}
	var sum, sq float64
	for _, v := range vals {
		sum += v
		sq += v * v
	}
	return cvFromSums(float64(len(vals)), sum, sq)
}

// cvFromSums is CV from the count, the sum and the sum of squares.
func cvFromSums(n, sum, sq float64) float64 {
	if n < 2 || sum == 0 {
		return 0
	}
	mean := sum / n
	v := sq/n - mean*mean
	if v <= 0 {
		return 0
	}
	return math.Sqrt(v) / mean
}

// MigrationRatio is migrations per unit of work (upstream ktstr's
// definition); 0 without work.
func MigrationRatio(migrations, iterations uint64) float64 {
	if iterations == 0 {
		return 0
	}
	return Round3(float64(migrations) / float64(iterations))
}

// Round3 rounds to three decimals (the frames' precision for ratios and
// rates).
func Round3(v float64) float64 {
	return math.Round(v*1000) / 1000
}

// Median returns the median of vals (the lower middle for an even count);
// 0 for none. vals is not modified.
func Median(vals []uint64) uint64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

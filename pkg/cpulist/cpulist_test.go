package cpulist

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "", want: nil},
		{in: "0\n", want: []int{0}},
		{in: "0-3,8", want: []int{0, 1, 2, 3, 8}},
		{in: " 8,0-1,1 ", want: []int{0, 1, 8}},
		{in: "0-7:2/4", want: []int{0, 1, 4, 5}},
		{in: "2-2", want: []int{2}},
		{in: "3-1", bad: true},
		{in: "1,,2", bad: true},
		{in: "a", bad: true},
		{in: "-1", bad: true},
		{in: "1-", bad: true},
		{in: "0-4000000000", bad: true},
		{in: "1:2/3", bad: true},
		{in: "0-7:3/2", bad: true},
		{in: "0-7:0/2", bad: true},
		{in: "+1", bad: true},
	} {
		got, err := Parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{3, 2, 1, 0, 8}, "0-3,8"},
		{[]int{0, 1, 5, 6, 7, 7}, "0-1,5-7"},
		{[]int{4, 2}, "2,4"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0", "0-3,8", "0-7:2/4", "1,,2", "3-1", "65536", "0-65536:1/65536", " 1 , 2 \n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := Parse(s)
		if err != nil {
			return
		}
		for i, c := range ids {
			if c < 0 || c > MaxID || (i > 0 && c <= ids[i-1]) {
				t.Fatalf("Parse(%q) = %v: not sorted, unique and in range", s, ids)
			}
		}
		again, err := Parse(Format(ids))
		if err != nil || !reflect.DeepEqual(again, ids) && !(len(again) == 0 && len(ids) == 0) {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, ids, Format(ids), again, err)
		}
	})
}
